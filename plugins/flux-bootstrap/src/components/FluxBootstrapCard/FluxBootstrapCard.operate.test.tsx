import { ResponseError } from '@backstage/errors';
import type {
  ClusterBootstrapState,
  OperateClusterResponse,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { exampleStatuses } from '../../fixtures';
import { apiWith, renderCard, row } from './__testUtils__/renderCard';

/*
 * Operating Flux from the card: the buttons appear only when the permission policy allows
 * flux.bootstrap.cluster.operate, call the client for the operate routes, and show the answer or
 * the refusal. The API and the permission API are mocks; the card, its buttons and the dialog
 * are the real components. usePermission caches its answer for the test file (SWR), so the
 * user without the permission is in FluxBootstrapCard.nooperate.test.tsx.
 */

function answer(
  action: OperateClusterResponse['action'],
  state: ClusterBootstrapState,
  message: string,
): OperateClusterResponse {
  return {
    cluster: 'prod-eu',
    action,
    status: {
      ...exampleStatuses()[state],
      cluster: 'prod-eu',
      title: 'Production EU',
    },
    message,
  };
}

describe('operating Flux from the card', () => {
  it('reconciles now and shows what the backend answered', async () => {
    const api = apiWith('ready', async () =>
      answer(
        'reconcile',
        'ready',
        'Reconcile requested; source and sync handled it',
      ),
    );
    await renderCard(api, true);
    const r = within(await row());
    const group = await r.findByRole('group', {
      name: 'Operate Flux on Production EU',
    });
    expect(within(group).queryByRole('button', { name: /Resume/ })).toBeNull();
    await userEvent.click(
      within(group).getByRole('button', {
        name: 'Reconcile now Production EU',
      }),
    );
    expect(await r.findByRole('status')).toHaveTextContent(
      'Reconcile requested; source and sync handled it',
    );
    expect(api.operateCluster).toHaveBeenCalledWith('prod-eu', 'reconcile', {});
  });

  it('asks for a reason before it suspends, sends it, and shows the suspended cluster', async () => {
    const api = apiWith('ready', async () =>
      answer('suspend', 'suspended', 'Suspended the sync Kustomization'),
    );
    await renderCard(api, true);
    const r = within(await row());
    await userEvent.click(
      await r.findByRole('button', { name: 'Suspend Production EU' }),
    );
    const dialog = await screen.findByRole('dialog', {
      name: 'Suspend the Flux sync of Production EU',
    });
    const confirm = within(dialog).getByRole('button', {
      name: 'Suspend sync',
    });
    // The reason is required: nothing is sent without one.
    expect(confirm).toBeDisabled();
    await userEvent.type(
      within(dialog).getByRole('textbox', { name: /Reason/ }),
      'incident INC-42',
    );
    expect(confirm).toBeEnabled();
    await userEvent.click(confirm);
    await waitFor(() =>
      expect(api.operateCluster).toHaveBeenCalledWith('prod-eu', 'suspend', {
        reason: 'incident INC-42',
      }),
    );
    // The answer's status is shown at once: the row is suspended and offers Resume.
    const suspended = within(
      await screen.findByRole('row', {
        name: /^Production EU .*State: Suspended/,
      }),
    );
    expect(
      suspended.getByRole('img', { name: 'State: Suspended' }),
    ).toBeInTheDocument();
    expect(
      await suspended.findByRole('button', { name: 'Resume Production EU' }),
    ).toBeInTheDocument();
  });

  it('resumes a suspended cluster', async () => {
    const api = apiWith('suspended', async () =>
      answer('resume', 'ready', 'Resumed the sync Kustomization'),
    );
    await renderCard(api, true);
    const r = within(await row());
    expect(r.queryByRole('button', { name: /Reconcile now/ })).toBeNull();
    await userEvent.click(
      await r.findByRole('button', { name: 'Resume Production EU' }),
    );
    expect(api.operateCluster).toHaveBeenCalledWith('prod-eu', 'resume', {});
    expect(await screen.findByRole('status')).toHaveTextContent(
      'Resumed the sync Kustomization',
    );
  });

  it('shows the refusal naming the missing permission when the backend answers 403', async () => {
    const api = apiWith('ready', async () => {
      throw await ResponseError.fromResponse(
        new Response(
          JSON.stringify({
            error: {
              name: 'NotAllowedError',
              message:
                'Operating Flux on cluster "prod-eu" requires the permission "flux.bootstrap.cluster.operate"',
            },
            response: { statusCode: 403 },
          }),
          {
            status: 403,
            statusText: 'Forbidden',
            headers: { 'content-type': 'application/json' },
          },
        ),
      );
    });
    await renderCard(api, true);
    const r = within(await row());
    await userEvent.click(
      await r.findByRole('button', { name: 'Reconcile now Production EU' }),
    );
    const alert = await r.findByRole('alert');
    expect(alert).toHaveTextContent('Refused');
    expect(alert).toHaveTextContent(
      'requires the permission "flux.bootstrap.cluster.operate"',
    );
  });
});
