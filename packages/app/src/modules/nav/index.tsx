import {
  Sidebar,
  SidebarDivider,
  SidebarGroup,
  SidebarItem,
  SidebarScrollWrapper,
  SidebarSpace,
  useSidebarOpenState,
} from '@backstage/core-components';
import { configApiRef, useApi } from '@backstage/core-plugin-api';
import { createFrontendModule } from '@backstage/frontend-plugin-api';
import { NavContentBlueprint } from '@backstage/plugin-app-react';
import { makeStyles, Typography } from '@material-ui/core';
import MenuIcon from '@material-ui/icons/Menu';

const useStyles = makeStyles({
  title: {
    color: '#fff',
    padding: '20px 16px 12px 24px',
    fontWeight: 700,
    lineHeight: 1.2,
    minHeight: 64,
  },
  short: {
    color: '#fff',
    padding: '20px 0 12px 0',
    textAlign: 'center',
    fontWeight: 700,
  },
});

/** The app title from `app.title`; the sandbox sets it to "Flux Bootstrap Sandbox". */
function AppTitle() {
  const classes = useStyles();
  const { isOpen } = useSidebarOpenState();
  const title =
    useApi(configApiRef).getOptionalString('app.title') ?? 'Flux Bootstrap';
  if (!isOpen) {
    return (
      <Typography className={classes.short} aria-label={title}>
        {title
          .split(/\s+/)
          .map(w => w[0])
          .join('')
          .slice(0, 3)}
      </Typography>
    );
  }
  return (
    <Typography variant="h6" className={classes.title} data-testid="app-title">
      {title}
    </Typography>
  );
}

/**
 * The nav bar: title, then catalog, "Create…" (scaffolder) and "Flux fleet" (the Flux bootstrap
 * plugin's fleet page), then any other page.
 */
export const navModule = createFrontendModule({
  pluginId: 'app',
  extensions: [
    NavContentBlueprint.make({
      params: {
        component: ({ navItems }) => {
          const nav = navItems.withComponent(item => (
            <SidebarItem
              icon={() => item.icon}
              to={item.href}
              text={item.title}
            />
          ));
          return (
            <Sidebar>
              <AppTitle />
              <SidebarDivider />
              <SidebarGroup label="Menu" icon={<MenuIcon />}>
                {nav.take('page:catalog')}
                {nav.take('page:scaffolder')}
                {nav.take('page:flux-bootstrap/fleet')}
                <SidebarDivider />
                <SidebarScrollWrapper>
                  {nav.rest({ sortBy: 'title' })}
                </SidebarScrollWrapper>
              </SidebarGroup>
              <SidebarSpace />
            </Sidebar>
          );
        },
      },
    }),
  ],
});
