import crypto from 'node:crypto';
import { KubeApiserverInfo, KubeHttp } from '../kube/http';
import {
  aggregatedClusterRoles,
  clusterRoleBinding,
  FLUX_COMPONENTS,
  restrictedSecurityContext,
  toMultiDocYaml,
} from './bundle';
import { conditionsSchema, readyColumns as fluxReadyColumns } from './crds';
import { K8sObject } from './patches';
import { ChangeEntry, FluxApplier } from './resources';
import { serveAssets, AssetServer } from './serve';

/**
 * Fixture of the Flux Operator's release manifest `install.yaml` (controlplaneio-fluxcd/
 * flux-operator, `kubectl kustomize config/default`), written by this project — the operator is
 * AGPL-3.0 and its files are not copied. It has the real file name, object kinds, names, labels
 * and namespace: Namespace `flux-system`; the CRDs `fluxinstances`, `fluxreports`, `resourcesets`,
 * `resourcesetinputproviders` of group `fluxcd.controlplane.io` (v1, namespaced, status
 * subresource) with a schema for the fields the product uses and NO CEL rules (the test apiserver
 * is 1.20); ServiceAccount `flux-operator`; ClusterRoleBinding `flux-operator-cluster-admin` →
 * `cluster-admin`; ClusterRoles `flux-operator-edit`, `flux-operator-view` (aggregated),
 * `flux-web-user`, `flux-web-admin`; Deployment `flux-operator` (container `manager`, image
 * `ghcr.io/controlplaneio-fluxcd/flux-operator:<version>`, env `RUNTIME_NAMESPACE`); Service
 * `flux-operator`. Like the real asset, the objects carry `app.kubernetes.io/name: flux-operator`
 * and no version label: the version is the image tag.
 */

export const FLUX_OPERATOR_VERSION = 'v0.58.1';
export const FLUX_OPERATOR_IMAGE =
  'ghcr.io/controlplaneio-fluxcd/flux-operator';

export interface FluxOperatorRelease {
  /** tag, e.g. `v0.58.1` */
  version: string;
  /** the `install.yaml` text */
  installYaml: string;
  /** hex sha256 of installYaml */
  sha256: string;
  /** goreleaser's `flux-operator_<version without v>_checksums.txt` name and text */
  checksumsFile: { name: string; text: string };
  /** the parsed objects of install.yaml */
  objects: Record<string, any>[];
}

type Schema = Record<string, unknown>;
const str = (description: string, extra: Schema = {}): Schema => ({
  type: 'string',
  description,
  ...extra,
});
const obj = (
  description: string,
  properties: Record<string, Schema>,
  extra: Schema = {},
): Schema => ({ type: 'object', description, properties, ...extra });
const open = (description: string): Schema => ({
  type: 'object',
  description,
  'x-kubernetes-preserve-unknown-fields': true,
});
const duration = (description: string): Schema =>
  str(description, { pattern: '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$' });

const COMPONENT_ENUM = [...FLUX_COMPONENTS];

const inventorySchema = obj(
  'Inventory contains a list of Kubernetes resource object references.',
  {
    entries: {
      type: 'array',
      items: obj(
        'ResourceRef contains the information necessary to locate a resource.',
        {
          id: str('ID is the string representation of the object.'),
          v: str('Version is the API version of the object.'),
        },
        { required: ['id', 'v'] },
      ),
    },
  },
  { required: ['entries'] },
);

const fluxInstanceSchema: Schema = obj(
  'FluxInstance is the Schema for the fluxinstances API.',
  {
    apiVersion: str('APIVersion of the object.'),
    kind: str('Kind of the object.'),
    metadata: { type: 'object' },
    spec: obj(
      'FluxInstanceSpec defines the desired state of FluxInstance.',
      {
        distribution: obj(
          'Distribution specifies the version and container registry to pull images from.',
          {
            version: str("Version semver expression e.g. '2.x', '2.3.x'."),
            registry: str(
              'Registry address to pull the distribution images from.',
            ),
            variant: str('Variant specifies the Flux distribution flavor.', {
              enum: [
                'upstream-alpine',
                'enterprise-alpine',
                'enterprise-distroless',
                'enterprise-distroless-fips',
              ],
            }),
            imagePullSecret: str(
              'ImagePullSecret is the name of the Kubernetes secret to use for pulling images.',
            ),
            artifact: str(
              'Artifact is the URL to the OCI artifact containing the latest Flux manifests.',
              { pattern: '^oci://.*$' },
            ),
            artifactPullSecret: str(
              'ArtifactPullSecret is the name of the Kubernetes secret to use for pulling the artifact.',
            ),
          },
          { required: ['registry', 'version'] },
        ),
        components: {
          type: 'array',
          description:
            'Components is used to specify which Flux components to install.',
          items: str('Component is the name of a Flux component.', {
            enum: COMPONENT_ENUM,
          }),
        },
        commonMetadata: obj(
          'CommonMetadata specifies labels and annotations applied to all resources.',
          {
            labels: {
              type: 'object',
              additionalProperties: { type: 'string' },
            },
            annotations: {
              type: 'object',
              additionalProperties: { type: 'string' },
            },
          },
        ),
        cluster: obj(
          'Cluster is the specification for the Kubernetes cluster.',
          {
            domain: str(
              'Domain is the cluster domain used for generating the FQDN of services.',
              { default: 'cluster.local' },
            ),
            multitenant: {
              type: 'boolean',
              default: false,
              description: 'Multitenant enables the multitenancy lockdown.',
            },
            multitenantWorkloadIdentity: {
              type: 'boolean',
              default: false,
              description: 'Multitenant workload identity lockdown.',
            },
            tenantDefaultServiceAccount: str(
              'TenantDefaultServiceAccount is the name of the service account to use as default.',
            ),
            tenantDefaultDecryptionServiceAccount: str(
              'Default decryption service account.',
            ),
            tenantDefaultKubeConfigServiceAccount: str(
              'Default kubeconfig service account.',
            ),
            objectLevelWorkloadIdentity: {
              type: 'boolean',
              description: 'Object-level workload identity.',
            },
            networkPolicy: {
              type: 'boolean',
              default: true,
              description:
                'NetworkPolicy restricts network access to the current namespace.',
            },
            type: str('Type specifies the distro of the Kubernetes cluster.', {
              default: 'kubernetes',
              enum: ['kubernetes', 'openshift', 'aws', 'azure', 'gcp'],
            }),
            size: str(
              'Size defines the vertical scaling profile of the Flux controllers.',
              {
                enum: ['small', 'medium', 'large'],
              },
            ),
          },
        ),
        sharding: open(
          'Sharding specifies the sharding configuration for the Flux controllers.',
        ),
        storage: open(
          'Storage specifies the persistent storage for Flux source-controller.',
        ),
        kustomize: obj(
          'Kustomize holds a set of patches that can be applied to the Flux installation.',
          {
            patches: {
              type: 'array',
              items: obj(
                'Patch contains an inline StrategicMerge or JSON6902 patch, and the target the patch should be applied to.',
                {
                  patch: str(
                    'Patch contains an inline StrategicMerge patch or an inline JSON6902 patch.',
                  ),
                  target: obj(
                    'Target points to the resources that the patch document should be applied to.',
                    {
                      group: str('Group'),
                      version: str('Version'),
                      kind: str('Kind'),
                      name: str('Name'),
                      namespace: str('Namespace'),
                      labelSelector: str('LabelSelector'),
                      annotationSelector: str('AnnotationSelector'),
                    },
                  ),
                },
                { required: ['patch'] },
              ),
            },
          },
        ),
        wait: {
          type: 'boolean',
          default: true,
          description:
            'Wait instructs the controller to check the health of all the reconciled resources.',
        },
        migrateResources: {
          type: 'boolean',
          default: true,
          description:
            'Migrate the Flux custom resources to their latest API version.',
        },
        sync: obj(
          'Sync specifies the source for the cluster sync operation.',
          {
            name: str(
              'Name is the name of the Flux source and kustomization resources.',
              { maxLength: 63 },
            ),
            interval: duration('Interval is the time between syncs.'),
            kind: str('Kind is the kind of the source.', {
              enum: ['OCIRepository', 'GitRepository', 'Bucket'],
            }),
            url: str(
              'URL is the source URL, can be a Git repository HTTP/S or SSH address, an OCI repository address or a Bucket endpoint.',
            ),
            ref: str(
              "Ref is the source reference, can be a Git ref name e.g. 'refs/heads/main', an OCI tag e.g. 'latest' or a bucket name e.g. 'flux'.",
            ),
            path: str(
              'Path is the path to the source directory containing the kustomize overlay or plain Kubernetes manifests.',
            ),
            pullSecret: str(
              'PullSecret specifies the Kubernetes Secret containing the authentication credentials for the source.',
            ),
            provider: str(
              'Provider specifies OIDC provider for source authentication.',
              {
                enum: ['generic', 'aws', 'azure', 'gcp', 'github'],
              },
            ),
          },
          { required: ['kind', 'path', 'ref', 'url'] },
        ),
      },
      { required: ['distribution'] },
    ),
    status: obj(
      'FluxInstanceStatus defines the observed state of FluxInstance.',
      {
        conditions: conditionsSchema,
        lastAttemptedRevision: str(
          'LastAttemptedRevision is the version and digest of the distribution config that was last attempted to reconcile.',
        ),
        lastAppliedRevision: str(
          'LastAppliedRevision is the version and digest of the distribution config that was last reconcile.',
        ),
        lastArtifactRevision: str(
          'LastArtifactRevision is the digest of the last pulled distribution artifact.',
        ),
        lastHandledReconcileAt: str(
          'LastHandledReconcileAt holds the value of the most recent reconcile request value.',
        ),
        lastHandledForceAt: str(
          'LastHandledForceAt holds the value of the most recent force request value.',
        ),
        components: {
          type: 'array',
          description:
            'ComponentImage represents a container image used by a component.',
          items: obj(
            'ComponentImage represents a container image used by a component.',
            {
              name: str('Name of the component.'),
              repository: str('Repository address of the container image.'),
              tag: str('Tag of the container image.'),
              digest: str('Digest of the container image.'),
            },
            { required: ['name', 'repository', 'tag'] },
          ),
        },
        inventory: inventorySchema,
        history: {
          type: 'array',
          description:
            'History contains the reconciliation history of the FluxInstance.',
          items: obj(
            'Snapshot represents a point-in-time record of a group of resources reconciliation.',
            {
              digest: str(
                'Digest is the checksum in the format `<algo>:<hex>` of the resources in this snapshot.',
              ),
              firstReconciled: str(
                'FirstReconciled is the time when this revision was first reconciled to the cluster.',
                { format: 'date-time' },
              ),
              lastReconciled: str(
                'LastReconciled is the time when this revision was last reconciled to the cluster.',
                { format: 'date-time' },
              ),
              lastReconciledDuration: str(
                'LastReconciledDuration is time it took to reconcile the resources in this revision.',
              ),
              lastReconciledStatus: str(
                'LastReconciledStatus is the status of the last reconciliation.',
              ),
              totalReconciliations: {
                type: 'integer',
                format: 'int64',
                description:
                  'TotalReconciliations is the total number of reconciliations.',
              },
              metadata: {
                type: 'object',
                additionalProperties: { type: 'string' },
              },
            },
            {
              required: [
                'digest',
                'firstReconciled',
                'lastReconciled',
                'lastReconciledDuration',
                'lastReconciledStatus',
                'totalReconciliations',
              ],
            },
          ),
        },
      },
    ),
  },
);

const fluxReportSchema: Schema = obj(
  'FluxReport is the Schema for the fluxreports API.',
  {
    apiVersion: str('APIVersion of the object.'),
    kind: str('Kind of the object.'),
    metadata: { type: 'object' },
    spec: obj(
      'FluxReportSpec defines the observed state of a Flux installation.',
      {
        distribution: obj(
          'Distribution is the version information of the Flux installation.',
          {
            entitlement: str(
              'Entitlement is the entitlement verification status.',
            ),
            status: str(
              'Status is a human-readable message indicating details about the distribution observed state.',
            ),
            version: str('Version is the version of the Flux instance.'),
            managedBy: str(
              'ManagedBy is the name of the operator managing the Flux instance.',
            ),
          },
          { required: ['entitlement', 'status'] },
        ),
        cluster: obj(
          'Cluster is the version information of the Kubernetes cluster.',
          {
            serverVersion: str('ServerVersion is the Kubernetes version.'),
            platform: str(
              'Platform is the os/arch of the Kubernetes control plane.',
            ),
            nodes: {
              type: 'integer',
              description:
                'Nodes is the number of nodes in the Kubernetes cluster.',
            },
          },
          { required: ['platform', 'serverVersion'] },
        ),
        operator: obj(
          'Operator is the version information of the Flux Operator.',
          {
            apiVersion: str(
              'APIVersion is the API version of the Flux Operator.',
            ),
            version: str('Version is the version number of Flux Operator.'),
            platform: str('Platform is the os/arch of Flux Operator.'),
          },
          { required: ['apiVersion', 'platform', 'version'] },
        ),
        components: {
          type: 'array',
          description:
            'ComponentsStatus is the status of the Flux controller deployments.',
          items: obj(
            'FluxComponentStatus defines the observed state of a Flux component.',
            {
              name: str('Name is the name of the Flux component.'),
              ready: {
                type: 'boolean',
                description:
                  'Ready is the readiness status of the Flux component.',
              },
              status: str(
                'Status is a human-readable message indicating details about the Flux component observed state.',
              ),
              image: str('Image is the container image of the Flux component.'),
            },
            { required: ['image', 'name', 'ready', 'status'] },
          ),
        },
        reconcilers: {
          type: 'array',
          description:
            'ReconcilersStatus is the list of Flux reconcilers and their statistics grouped by API kind.',
          items: obj(
            'FluxReconcilerStatus defines the observed state of a Flux reconciler.',
            {
              apiVersion: str(
                'APIVersion is the API version of the Flux resource.',
              ),
              kind: str('Kind is the kind of the Flux resource.'),
              stats: obj(
                'Stats is the reconcile statics of the Flux resource kind.',
                {
                  running: { type: 'integer' },
                  failing: { type: 'integer' },
                  suspended: { type: 'integer' },
                  totalSize: str(
                    'TotalSize is the total size of the artifacts in storage.',
                  ),
                },
                { required: ['failing', 'running', 'suspended'] },
              ),
            },
            { required: ['apiVersion', 'kind'] },
          ),
        },
        sync: obj(
          'SyncStatus is the status of the cluster sync Source and Kustomization resources.',
          {
            id: str('ID is the identifier of the sync.'),
            path: str('Path is the kustomize path of the sync.'),
            ready: {
              type: 'boolean',
              description: 'Ready is the readiness status of the sync.',
            },
            status: str(
              'Status is a human-readable message indicating details about the sync observed state.',
            ),
            source: str('Source is the URL of the source repository.'),
          },
          { required: ['id', 'ready', 'status'] },
        ),
      },
      { required: ['distribution'] },
    ),
    status: obj('FluxReportStatus defines the readiness of a FluxReport.', {
      conditions: conditionsSchema,
      lastHandledReconcileAt: str(
        'LastHandledReconcileAt holds the value of the most recent reconcile request value.',
      ),
    }),
  },
);

const genericSchema = (kind: string): Schema => ({
  type: 'object',
  description: `${kind} is a Flux Operator custom resource.`,
  properties: {
    apiVersion: str('APIVersion of the object.'),
    kind: str('Kind of the object.'),
    metadata: { type: 'object' },
    spec: open(`${kind}Spec.`),
    status: open(`${kind}Status.`),
  },
});

const readyColumns = fluxReadyColumns();

function operatorCrd(def: {
  kind: string;
  plural: string;
  singular: string;
  shortNames?: string[];
  categories: string[];
  schema: Schema;
  columns: Schema[];
}): Record<string, any> {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      annotations: { 'controller-gen.kubebuilder.io/version': 'v0.19.0' },
      labels: { 'app.kubernetes.io/name': 'flux-operator' },
      name: `${def.plural}.fluxcd.controlplane.io`,
    },
    spec: {
      group: 'fluxcd.controlplane.io',
      names: {
        categories: def.categories,
        kind: def.kind,
        listKind: `${def.kind}List`,
        plural: def.plural,
        ...(def.shortNames ? { shortNames: def.shortNames } : {}),
        singular: def.singular,
      },
      scope: 'Namespaced',
      versions: [
        {
          additionalPrinterColumns: def.columns,
          name: 'v1',
          schema: { openAPIV3Schema: def.schema },
          served: true,
          storage: true,
          subresources: { status: {} },
        },
      ],
    },
  };
}

/** The four CRDs of the operator's install.yaml (fixture schemas, no CEL). */
export function fluxOperatorCrds(): Record<string, any>[] {
  return [
    operatorCrd({
      kind: 'FluxInstance',
      plural: 'fluxinstances',
      singular: 'fluxinstance',
      categories: ['fluxcd', 'fluxcd-appliers'],
      schema: fluxInstanceSchema,
      columns: [
        ...readyColumns,
        {
          jsonPath: '.status.lastAttemptedRevision',
          name: 'Revision',
          type: 'string',
        },
      ],
    }),
    operatorCrd({
      kind: 'FluxReport',
      plural: 'fluxreports',
      singular: 'fluxreport',
      categories: ['fluxcd'],
      schema: fluxReportSchema,
      columns: [
        {
          jsonPath: '.spec.distribution.entitlement',
          name: 'Entitlement',
          type: 'string',
        },
        ...readyColumns.slice(1),
        {
          jsonPath: '.status.conditions[?(@.type=="Ready")].lastTransitionTime',
          name: 'LastUpdated',
          type: 'date',
        },
      ],
    }),
    operatorCrd({
      kind: 'ResourceSet',
      plural: 'resourcesets',
      singular: 'resourceset',
      shortNames: ['rset'],
      categories: ['all', 'fluxcd', 'fluxcd-appliers'],
      schema: genericSchema('ResourceSet'),
      columns: readyColumns,
    }),
    operatorCrd({
      kind: 'ResourceSetInputProvider',
      plural: 'resourcesetinputproviders',
      singular: 'resourcesetinputprovider',
      shortNames: ['rsip'],
      categories: ['all', 'fluxcd'],
      schema: genericSchema('ResourceSetInputProvider'),
      columns: readyColumns,
    }),
  ];
}

function installObjects(version: string): Record<string, any>[] {
  const ns = 'flux-system';
  const name = { 'app.kubernetes.io/name': 'flux-operator' };
  const rbac = 'rbac.authorization.k8s.io/v1';
  const fluxGroups = [
    'fluxcd.controlplane.io',
    'source.toolkit.fluxcd.io',
    'source.extensions.fluxcd.io',
    'kustomize.toolkit.fluxcd.io',
    'helm.toolkit.fluxcd.io',
    'image.toolkit.fluxcd.io',
    'notification.toolkit.fluxcd.io',
  ];
  return [
    {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { labels: name, name: ns },
    },
    ...fluxOperatorCrds(),
    {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { labels: name, name: 'flux-operator', namespace: ns },
    },
    ...aggregatedClusterRoles('flux-operator', {
      apiGroups: ['fluxcd.controlplane.io'],
      resources: ['resourcesets', 'resourcesetinputproviders'],
    }),
    {
      apiVersion: rbac,
      kind: 'ClusterRole',
      metadata: { name: 'flux-web-user' },
      rules: [
        { apiGroups: ['*'], resources: ['*'], verbs: ['get', 'list', 'watch'] },
      ],
    },
    {
      apiVersion: rbac,
      kind: 'ClusterRole',
      metadata: {
        labels: { 'app.kubernetes.io/part-of': 'flux-operator' },
        name: 'flux-web-admin',
      },
      rules: [
        { apiGroups: ['*'], resources: ['*'], verbs: ['get', 'list', 'watch'] },
        {
          apiGroups: fluxGroups,
          resources: ['*'],
          verbs: ['patch', 'reconcile', 'suspend', 'resume', 'download'],
        },
        {
          apiGroups: ['apps'],
          resources: ['deployments', 'statefulsets', 'daemonsets'],
          verbs: ['patch', 'restart'],
        },
      ],
    },
    clusterRoleBinding('flux-operator-cluster-admin', 'cluster-admin', [
      { kind: 'ServiceAccount', name: 'flux-operator', namespace: ns },
    ]),
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { labels: name, name: 'flux-operator', namespace: ns },
      spec: {
        ports: [
          { name: 'http-web', port: 9080, protocol: 'TCP', targetPort: 9080 },
          { name: 'http', port: 8080, protocol: 'TCP', targetPort: 8080 },
        ],
        selector: name,
      },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { labels: name, name: 'flux-operator', namespace: ns },
      spec: {
        replicas: 1,
        selector: { matchLabels: name },
        template: {
          metadata: {
            annotations: {
              'prometheus.io/path': '/metrics',
              'prometheus.io/port': '8080',
              'prometheus.io/scrape': 'true',
            },
            labels: name,
          },
          spec: {
            containers: [
              {
                env: [
                  {
                    name: 'RUNTIME_NAMESPACE',
                    valueFrom: {
                      fieldRef: { fieldPath: 'metadata.namespace' },
                    },
                  },
                ],
                image: `${FLUX_OPERATOR_IMAGE}:${version}`,
                imagePullPolicy: 'IfNotPresent',
                livenessProbe: {
                  httpGet: { path: '/healthz', port: 8081 },
                  initialDelaySeconds: 15,
                  periodSeconds: 20,
                },
                name: 'manager',
                ports: [
                  { containerPort: 9080, name: 'http-web', protocol: 'TCP' },
                  {
                    containerPort: 8080,
                    name: 'http-metrics',
                    protocol: 'TCP',
                  },
                  { containerPort: 8081, name: 'http', protocol: 'TCP' },
                ],
                readinessProbe: {
                  httpGet: { path: '/readyz', port: 8081 },
                  initialDelaySeconds: 5,
                  periodSeconds: 10,
                },
                resources: {
                  limits: { cpu: '2000m', memory: '1Gi' },
                  requests: { cpu: '10m', memory: '64Mi' },
                },
                securityContext: restrictedSecurityContext(),
                volumeMounts: [{ mountPath: '/tmp', name: 'temp' }],
              },
            ],
            serviceAccountName: 'flux-operator',
            terminationGracePeriodSeconds: 10,
            volumes: [{ emptyDir: {}, name: 'temp' }],
          },
        },
      },
    },
  ];
}

/** Builds the operator release fixture of `version` (default FLUX_OPERATOR_VERSION). */
export function buildFluxOperatorRelease(
  opts: { version?: string } = {},
): FluxOperatorRelease {
  const version = opts.version ?? FLUX_OPERATOR_VERSION;
  if (!/^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(version))
    throw new Error(
      `buildFluxOperatorRelease: version "${version}" is not a tag like v0.58.1`,
    );
  const objects = installObjects(version);
  const installYaml = `---\n${toMultiDocYaml(objects)}`;
  const sha256 = crypto.createHash('sha256').update(installYaml).digest('hex');
  const bare = version.slice(1);
  return {
    version,
    installYaml,
    sha256,
    objects,
    checksumsFile: {
      name: `flux-operator_${bare}_checksums.txt`,
      text: `${sha256}  install.yaml\n`,
    },
  };
}

export interface FluxOperatorReleaseServer extends AssetServer {
  /** `<baseUrl>/<tag>/install.yaml` (like `…/releases/download/<tag>/install.yaml`) */
  urlFor(version: string): string;
  /** `<baseUrl>/<tag>/flux-operator_<version>_checksums.txt` */
  checksumsUrlFor(version: string): string;
  add(release: FluxOperatorRelease): void;
}

/**
 * Serves operator releases on 127.0.0.1 the way GitHub serves release assets:
 * `<baseUrl>/<tag>/install.yaml` and `<baseUrl>/<tag>/flux-operator_<version>_checksums.txt`
 * (`<sha256>  install.yaml`). Same request log and fault injection as serveFluxBundles.
 */
export async function serveFluxOperatorReleases(
  releases: FluxOperatorRelease[],
): Promise<FluxOperatorReleaseServer> {
  const byTag = new Map<string, FluxOperatorRelease>();
  const add = (r: FluxOperatorRelease) => byTag.set(r.version, r);
  releases.forEach(add);
  const server = await serveAssets(p => {
    const m = /^\/([^/]+)\/([^/]+)$/.exec(p);
    const r = m ? byTag.get(decodeURIComponent(m[1])) : undefined;
    if (!m || !r) return undefined;
    if (m[2] === 'install.yaml')
      return {
        body: r.installYaml,
        contentType: 'application/octet-stream',
        filename: 'install.yaml',
      };
    if (m[2] === r.checksumsFile.name)
      return { body: r.checksumsFile.text, contentType: 'text/plain' };
    return undefined;
  });
  return {
    ...server,
    urlFor: v => `${server.baseUrl}/${encodeURIComponent(v)}/install.yaml`,
    checksumsUrlFor: v =>
      `${server.baseUrl}/${encodeURIComponent(v)}/flux-operator_${v.replace(
        /^v/,
        '',
      )}_checksums.txt`,
    add,
  };
}

/**
 * Test helper (not the product's installer): applies an operator release's objects with
 * server-side apply (staged: Namespace, CRDs — waited for until Established — and ClusterRoles
 * first), like `kubectl apply --server-side -f install.yaml`. Returns what it applied.
 */
export async function applyFluxOperatorRelease(
  kube: KubeApiserverInfo,
  release: Pick<FluxOperatorRelease, 'objects'>,
  opts: { fieldManager?: string } = {},
): Promise<ChangeEntry[]> {
  const api = new KubeHttp(kube);
  const abort = new AbortController();
  try {
    const applier = new FluxApplier(api, abort.signal);
    return await applier.applyAllStaged(
      JSON.parse(JSON.stringify(release.objects)) as K8sObject[],
      {
        fieldManager: opts.fieldManager ?? 'kubectl',
        ownerGroup: '',
      },
    );
  } finally {
    api.close();
  }
}
