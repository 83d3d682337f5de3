import { useEffect, useMemo, useState } from 'react';
import { useApiHolder } from '@backstage/core-plugin-api';
import type { ResponseError } from '@backstage/errors';
import type { FieldExtensionComponentProps } from '@backstage/plugin-scaffolder-react';
import type { ClusterKubernetesSupport } from '@flux-bootstrap/plugin-flux-bootstrap-common';
// Material UI on purpose: a form field rendered inside the scaffolder's own Material UI form.
import {
  Checkbox,
  FormControl,
  FormHelperText,
  InputLabel,
  ListItemIcon,
  ListItemText,
  MenuItem,
  Select,
} from '@material-ui/core';
import {
  FluxBootstrapApi,
  fluxBootstrapApiFrom,
} from '../api/FluxBootstrapApi';

/** `ui:options` of the FluxClusterPicker field. */
export interface ClusterPickerUiOptions {
  /** Only offer these cluster names (from `kubernetes.clusterLocatorMethods`). */
  allowedClusters?: string[];
  /** Pick several clusters: the value is then a `string[]` (for fleet templates). */
  multiple?: boolean;
  /**
   * The form field holding the Flux version the template installs (default `fluxVersion`); the
   * clusters whose Kubernetes it does not support are marked. Without a value, the configured
   * default version is judged.
   */
  fluxVersionField?: string;
}

/** A cluster as the picker shows it. */
export interface PickerCluster {
  name: string;
  title?: string;
  /** Bootstrap state from the status backend, when it could be read. */
  state?: string;
  reason?: string;
  /** The API server's version, when the status backend could read it. */
  kubernetesVersion?: string;
  /** Whether its Kubernetes suits the Flux version the template installs. */
  kubernetesSupport?: ClusterKubernetesSupport;
}

const STATE_LABEL: Record<string, string> = {
  ready: 'Flux bootstrapped and ready',
  installing: 'Flux installed, not ready yet',
  'awaiting-merge': 'Flux installed, waiting for its pull request to be merged',
  failing: 'Flux installed but failing',
  suspended: 'Flux sync suspended',
  'not-installed': 'Flux not installed',
  unreachable: 'unreachable',
  forbidden: 'credentials refused',
};

/** Text shown under a cluster's name in the picker. */
export function describeClusterState(c: PickerCluster): string {
  const state = c.state
    ? STATE_LABEL[c.state] ?? c.state
    : 'bootstrap state unknown';
  if (!c.kubernetesVersion) return state;
  const support = c.kubernetesSupport;
  let mark = '';
  if (support?.level === 'unsupported') {
    mark = ` — not supported by Flux ${support.fluxVersion} (needs ${support.range})`;
  } else if (support?.level === 'untested') {
    mark = ` — untested with Flux ${support.fluxVersion} (supported ${support.range})`;
  }
  return `${state} · Kubernetes ${c.kubernetesVersion}${mark}`;
}

/**
 * Loads the configured clusters with their bootstrap state from the status backend
 * (`GET /api/flux-bootstrap/clusters?state=true`), judged for `fluxVersion`. When the state cannot be read (e.g. the list
 * answered without it), clusters are still offered, with an unknown state. A refused list
 * (e.g. no permission) fails with the backend's reason.
 */
export async function loadPickerClusters(
  api: Pick<FluxBootstrapApi, 'listClusters'>,
  fluxVersion?: string,
): Promise<PickerCluster[]> {
  let body;
  try {
    body = await api.listClusters({ state: true, fluxVersion });
  } catch (e) {
    const reason =
      (e as Partial<ResponseError>).body?.error?.message ??
      (e instanceof Error ? e.message : String(e));
    throw new Error(`Could not list clusters: ${reason}`);
  }
  return (body.items ?? []).map(item => ({
    name: item.name,
    title: item.title,
    state: item.status?.state,
    reason: item.status?.reason,
    kubernetesVersion: item.status?.kubernetesVersion,
    kubernetesSupport: item.kubernetesSupport,
  }));
}

/**
 * Scaffolder field `FluxClusterPicker` listing the clusters configured in
 * `kubernetes.clusterLocatorMethods` with their Flux bootstrap state. Its value is the cluster
 * name the actions resolve.
 *
 * A custom field rather than an `EntityPicker` on cluster Resources, because a cluster that has
 * never been bootstrapped has no catalog entity yet (the template registers it as its last
 * step), while the clusters the actions can reach are exactly those of
 * `kubernetes.clusterLocatorMethods` — which the status backend lists, with their state.
 */
export function ClusterPicker(
  props: FieldExtensionComponentProps<
    string | string[],
    ClusterPickerUiOptions
  >,
) {
  const {
    formData,
    onChange,
    required,
    rawErrors,
    schema,
    uiSchema,
    idSchema,
    formContext,
  } = props;
  // The plugin's API when the app has it; a legacy app that uses only the form fields (field
  // extensions register no plugin APIs) gets the same client over the core discovery and fetch.
  const apiHolder = useApiHolder();
  const api = useMemo(() => fluxBootstrapApiFrom(apiHolder), [apiHolder]);
  const [clusters, setClusters] = useState<PickerCluster[]>();
  const [error, setError] = useState<string>();
  const allowed = uiSchema?.['ui:options']?.allowedClusters;
  // The whole form's data (every step) is in formContext.formData.
  const versionField = uiSchema?.['ui:options']?.fluxVersionField;
  const chosenVersion = (
    formContext as { formData?: Record<string, unknown> } | undefined
  )?.formData?.[versionField ?? 'fluxVersion'];
  const fluxVersion =
    typeof chosenVersion === 'string' && /^v\d+\.\d+\.\d+$/.test(chosenVersion)
      ? chosenVersion
      : undefined;
  const multiple =
    uiSchema?.['ui:options']?.multiple === true ||
    (schema as { type?: unknown }).type === 'array';
  const label = (c: PickerCluster) =>
    c.title ? `${c.title} (${c.name})` : c.name;

  useEffect(() => {
    let cancelled = false;
    (async () => {
      try {
        const all = await loadPickerClusters(api, fluxVersion);
        if (!cancelled) {
          setClusters(
            allowed ? all.filter(c => allowed.includes(c.name)) : all,
          );
        }
      } catch (e) {
        if (!cancelled) setError(e instanceof Error ? e.message : String(e));
      }
    })();
    return () => {
      cancelled = true;
    };
  }, [api, allowed, fluxVersion]);

  const id = idSchema?.$id ?? 'cluster';
  let values: string[] = [];
  if (Array.isArray(formData)) values = formData;
  else if (formData) values = [formData];
  const chosen = (clusters ?? []).filter(c => values.includes(c.name));
  const selected = !multiple ? chosen[0] : undefined;
  let helper = schema.description ?? '';
  if (error) helper = error;
  else if (!clusters) helper = 'Loading clusters…';
  else if (clusters.length === 0) {
    helper =
      'No clusters are configured (kubernetes.clusterLocatorMethods in app-config.yaml).';
  } else if (selected)
    helper = `${selected.name}: ${describeClusterState(selected)}`;
  else if (multiple && chosen.length)
    helper = `${chosen.length} cluster${
      chosen.length === 1 ? '' : 's'
    }: ${chosen.map(c => `${c.name} (${describeClusterState(c)})`).join('; ')}`;

  return (
    <FormControl
      fullWidth
      margin="normal"
      required={required}
      error={
        !!error ||
        (rawErrors?.length ?? 0) > 0 ||
        chosen.some(c => c.kubernetesSupport?.level === 'unsupported')
      }
    >
      <InputLabel id={`${id}-label`}>{schema.title ?? 'Cluster'}</InputLabel>
      <Select
        labelId={`${id}-label`}
        id={id}
        data-testid="flux-cluster-picker"
        multiple={multiple}
        value={multiple ? values : values[0] ?? ''}
        onChange={e => {
          const v = e.target.value;
          onChange(
            multiple ? (Array.isArray(v) ? v : [v]).map(String) : String(v),
          );
        }}
        MenuProps={{
          // Open below the field instead of over it.
          getContentAnchorEl: null,
          anchorOrigin: { vertical: 'bottom', horizontal: 'left' },
          transformOrigin: { vertical: 'top', horizontal: 'left' },
        }}
        renderValue={v =>
          (Array.isArray(v) ? v : [v])
            .map(name => {
              const c = clusters?.find(x => x.name === name);
              return c ? label(c) : String(name ?? '');
            })
            .join(', ')
        }
      >
        {(clusters ?? []).map(c => (
          <MenuItem
            key={c.name}
            value={c.name}
            data-testid={`cluster-option-${c.name}`}
            data-kubernetes-support={c.kubernetesSupport?.level}
          >
            {multiple && (
              <ListItemIcon>
                <Checkbox
                  edge="start"
                  checked={values.includes(c.name)}
                  tabIndex={-1}
                  disableRipple
                  inputProps={{ 'aria-label': `Select ${label(c)}` }}
                />
              </ListItemIcon>
            )}
            <ListItemText
              primary={label(c)}
              secondary={describeClusterState(c)}
              secondaryTypographyProps={
                c.kubernetesSupport?.level === 'unsupported'
                  ? { color: 'error' }
                  : undefined
              }
            />
          </MenuItem>
        ))}
      </Select>
      <FormHelperText>{helper}</FormHelperText>
    </FormControl>
  );
}
