import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tar from 'tar';
import semver from 'semver';
import YAML from 'yaml';
import { crdObject, FLUX_CRDS } from './crds';

/**
 * A small Flux release bundle (`manifests.tar.gz`) written by this project for tests. It has the
 * real file names and object kinds of fluxcd/flux2's release asset (spec Appendix A): per
 * controller its CRDs + ServiceAccount (+ Service) + Deployment with the labels of flux2's
 * `labels.yaml` and the Deployment args in the order flux2's generator patches them by index;
 * `rbac.yaml` (ClusterRoles/Bindings before the generator's nameSuffix, ResourceQuota) and
 * `policies.yaml` (three NetworkPolicies). Every object applies on a 1.20 apiserver.
 */

export const FLUX_COMPONENTS = [
  'source-controller',
  'kustomize-controller',
  'helm-controller',
  'notification-controller',
  'image-reflector-controller',
  'image-automation-controller',
  'source-watcher',
] as const;
export type FluxComponent = (typeof FLUX_COMPONENTS)[number];

export const FLUX_BUNDLE_FILES = [
  ...FLUX_COMPONENTS.map(c => `${c}.yaml`),
  'rbac.yaml',
  'policies.yaml',
];

/** Controller image tags embedded in flux2 v2.9.4 (used for that version). */
const V2_9_4_TAGS: Record<FluxComponent, string> = {
  'source-controller': 'v1.9.4',
  'kustomize-controller': 'v1.9.4',
  'helm-controller': 'v1.6.3',
  'notification-controller': 'v1.9.3',
  'image-reflector-controller': 'v1.2.4',
  'image-automation-controller': 'v1.2.4',
  'source-watcher': 'v2.2.3',
};

/**
 * The two Flux versions of the upgrade fixture. They differ in every controller image tag
 * (`v2.9.4` has flux2 v2.9.4's real tags, e.g. `source-controller:v1.9.4`; `v2.10.0` uses
 * `v2.10.0`), in the `app.kubernetes.io/version` label the generator adds, and in their CRDs: from
 * `v2.10.0` on the fixture no longer serves the deprecated `v1beta2` of the kinds stored as `v1`
 * (GitRepository, Kustomization, OCIRepository, …).
 */
export const FLUX_UPGRADE_VERSIONS = { from: 'v2.9.4', to: 'v2.10.0' } as const;

export interface BuildFluxBundleOptions {
  /** Flux version, e.g. `v2.9.4`. Other versions get `fluxcd/<component>:<version>` images, so bundles differ. */
  version: string;
  /** Grow every CRD to about this many bytes (real ones are ~100-300 KB) for benchmarks. */
  crdPadBytes?: number;
  /** Replace (string) or remove (null) files before packing, e.g. to test a broken bundle. */
  overrideFiles?: Record<string, string | null>;
}

export interface FluxBundle {
  version: string;
  /** gzip'd tar, flat, no folders (like `tar -czf manifests.tar.gz *.yaml`). Deterministic for the same input. */
  tarball: Buffer;
  /** hex sha256 of `tarball` */
  sha256: string;
  /** file name → YAML text */
  files: Record<string, string>;
}

const EVENTS_ADDR =
  '--events-addr=http://notification-controller.flux-system.svc.cluster.local./';

interface ControllerShape {
  ports: { name: string; containerPort: number }[];
  /** args after the generator-patched ones */
  args: string[];
  storage?: boolean;
  priorityClass?: boolean;
  terminationGracePeriodSeconds: number;
  services?: { name: string; targetPort: string }[];
}

/** The flags every controller gets, after `--events-addr` where it sends events. */
const WATCH_ARGS = [
  '--watch-all-namespaces',
  '--log-level=info',
  '--log-encoding=json',
  '--enable-leader-election',
];

/** A controller's args: `--events-addr`, the common flags, then its own. */
const eventingArgs = (...own: string[]) => [EVENTS_ADDR, ...WATCH_ARGS, ...own];

/** The flags of a controller that stores artifacts under `/data` and serves them. */
const storageArgs = (serviceName: string) => [
  '--storage-path=/data',
  `--storage-adv-addr=${serviceName}.$(RUNTIME_NAMESPACE).svc.cluster.local.`,
];

/** A controller's ports: its own, then the metrics and health ports every controller has. */
const ports = (...own: ControllerShape['ports']): ControllerShape['ports'] => [
  ...own,
  { name: 'http-prom', containerPort: 8080 },
  { name: 'healthz', containerPort: 9440 },
];

const HTTP_PORT = { name: 'http', containerPort: 9090 };

const SHAPES: Record<FluxComponent, ControllerShape> = {
  'source-controller': {
    ports: ports(HTTP_PORT),
    args: eventingArgs(...storageArgs('source-controller')),
    storage: true,
    priorityClass: true,
    terminationGracePeriodSeconds: 10,
    services: [{ name: 'source-controller', targetPort: 'http' }],
  },
  'kustomize-controller': {
    ports: ports(),
    args: eventingArgs(),
    priorityClass: true,
    terminationGracePeriodSeconds: 60,
  },
  'helm-controller': {
    ports: ports(),
    args: eventingArgs(),
    priorityClass: true,
    terminationGracePeriodSeconds: 600,
  },
  'notification-controller': {
    ports: ports(HTTP_PORT, { name: 'http-webhook', containerPort: 9292 }),
    args: [...WATCH_ARGS],
    terminationGracePeriodSeconds: 10,
    services: [
      { name: 'notification-controller', targetPort: 'http' },
      { name: 'webhook-receiver', targetPort: 'http-webhook' },
    ],
  },
  'image-reflector-controller': {
    ports: ports(),
    args: eventingArgs('--storage-path=/data'),
    storage: true,
    terminationGracePeriodSeconds: 10,
  },
  'image-automation-controller': {
    ports: ports(),
    args: eventingArgs(),
    terminationGracePeriodSeconds: 10,
  },
  'source-watcher': {
    ports: ports(HTTP_PORT),
    args: eventingArgs(...storageArgs('source-watcher')),
    storage: true,
    priorityClass: true,
    terminationGracePeriodSeconds: 10,
    services: [{ name: 'source-watcher', targetPort: 'http' }],
  },
};

/** The container securityContext of Pod Security's `restricted` profile, as Flux's controllers set it. */
export const restrictedSecurityContext = () => ({
  allowPrivilegeEscalation: false,
  capabilities: { drop: ['ALL'] },
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  seccompProfile: { type: 'RuntimeDefault' },
});

const componentLabels = (c: string) => ({
  'app.kubernetes.io/component': c,
  'app.kubernetes.io/part-of': 'flux',
});

function deployment(c: FluxComponent, tag: string): Record<string, any> {
  const s = SHAPES[c];
  const volumes = [
    ...(s.storage ? [{ name: 'data', emptyDir: {} }] : []),
    { name: 'temp', emptyDir: {} },
  ];
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      labels: { ...componentLabels(c), 'control-plane': 'controller' },
      name: c,
    },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: c } },
      ...(s.storage ? { strategy: { type: 'Recreate' } } : {}),
      template: {
        metadata: {
          annotations: {
            'prometheus.io/port': '8080',
            'prometheus.io/scrape': 'true',
          },
          labels: { app: c, ...componentLabels(c) },
        },
        spec: {
          containers: [
            {
              args: s.args,
              env: [
                {
                  name: 'RUNTIME_NAMESPACE',
                  valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } },
                },
                {
                  name: 'GOMEMLIMIT',
                  valueFrom: {
                    resourceFieldRef: {
                      containerName: 'manager',
                      resource: 'limits.memory',
                    },
                  },
                },
              ],
              image: `fluxcd/${c}:${tag}`,
              imagePullPolicy: 'IfNotPresent',
              livenessProbe: { httpGet: { path: '/healthz', port: 'healthz' } },
              name: 'manager',
              ports: s.ports.map(p => ({ ...p, protocol: 'TCP' })),
              readinessProbe: { httpGet: { path: '/readyz', port: 'healthz' } },
              resources: {
                limits: { cpu: '1000m', memory: '1Gi' },
                requests: { cpu: '100m', memory: '64Mi' },
              },
              securityContext: restrictedSecurityContext(),
              volumeMounts: [
                ...(s.storage ? [{ mountPath: '/data', name: 'data' }] : []),
                { mountPath: '/tmp', name: 'temp' },
              ],
            },
          ],
          ...(s.priorityClass
            ? { priorityClassName: 'system-cluster-critical' }
            : {}),
          securityContext: { fsGroup: 1337 },
          serviceAccountName: c,
          terminationGracePeriodSeconds: s.terminationGracePeriodSeconds,
          volumes,
        },
      },
    },
  };
}

function controllerDocs(
  c: FluxComponent,
  tag: string,
  padBytes: number,
  dropBetaVersions: boolean,
): Record<string, any>[] {
  const crds = FLUX_CRDS.filter(d => d.component === c)
    .map(d => crdObject(d, padBytes, { dropBetaVersions }))
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  const services = (SHAPES[c].services ?? []).map(svc => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      labels: { ...componentLabels(c), 'control-plane': 'controller' },
      name: svc.name,
    },
    spec: {
      ports: [
        { name: 'http', port: 80, protocol: 'TCP', targetPort: svc.targetPort },
      ],
      selector: { app: c },
      type: 'ClusterIP',
    },
  }));
  return [
    ...crds,
    {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { labels: componentLabels(c), name: c },
    },
    ...services,
    deployment(c, tag),
  ];
}

const FLUX_GROUPS = [
  'source.toolkit.fluxcd.io',
  'kustomize.toolkit.fluxcd.io',
  'helm.toolkit.fluxcd.io',
  'notification.toolkit.fluxcd.io',
  'image.toolkit.fluxcd.io',
  'source.extensions.fluxcd.io',
];

const RBAC_V1 = 'rbac.authorization.k8s.io/v1';

/** The verbs of a controller that manages objects of a resource (a fresh list: YAML aliases shared ones). */
const readWriteVerbs = () => [
  'get',
  'list',
  'watch',
  'create',
  'update',
  'patch',
  'delete',
];

/**
 * The ClusterRoles `<prefix>-edit` and `<prefix>-view` that aggregate into Kubernetes' `admin`,
 * `edit` (both) and `view` (the view role) roles, for the resources of `rule`.
 */
export function aggregatedClusterRoles(
  prefix: string,
  rule: { apiGroups: string[]; resources: string[] },
): Record<string, any>[] {
  const aggregateTo = (...roles: string[]) =>
    Object.fromEntries(
      roles.map(r => [`rbac.authorization.k8s.io/aggregate-to-${r}`, 'true']),
    );
  const role = (suffix: string, to: string[], verbs: string[]) => ({
    apiVersion: RBAC_V1,
    kind: 'ClusterRole',
    metadata: { labels: aggregateTo(...to), name: `${prefix}-${suffix}` },
    rules: [{ ...rule, verbs }],
  });
  return [
    role(
      'edit',
      ['admin', 'edit'],
      ['create', 'delete', 'deletecollection', 'patch', 'update'],
    ),
    role('view', ['admin', 'edit', 'view'], ['get', 'list', 'watch']),
  ];
}

/** A ClusterRoleBinding `name` of the ClusterRole `role` to `subjects`. */
export function clusterRoleBinding(
  name: string,
  role: string,
  subjects: Record<string, string>[],
): Record<string, any> {
  return {
    apiVersion: RBAC_V1,
    kind: 'ClusterRoleBinding',
    metadata: { name },
    roleRef: {
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'ClusterRole',
      name: role,
    },
    subjects,
  };
}

function rbacDocs(): Record<string, any>[] {
  const rbac = RBAC_V1;
  const sa = (name: string) => ({
    kind: 'ServiceAccount',
    name,
    namespace: 'flux-system',
  });
  return [
    {
      apiVersion: 'v1',
      kind: 'ResourceQuota',
      metadata: { name: 'critical-pods' },
      spec: {
        hard: { pods: '1000' },
        scopeSelector: {
          matchExpressions: [
            {
              operator: 'In',
              scopeName: 'PriorityClass',
              values: ['system-node-critical', 'system-cluster-critical'],
            },
          ],
        },
      },
    },
    {
      apiVersion: rbac,
      kind: 'ClusterRole',
      metadata: { name: 'crd-controller' },
      rules: [
        ...FLUX_GROUPS.map(g => ({
          apiGroups: [g],
          resources: ['*'],
          verbs: ['*'],
        })),
        {
          apiGroups: [''],
          resources: ['namespaces', 'secrets', 'configmaps', 'serviceaccounts'],
          verbs: ['get', 'list', 'watch'],
        },
        { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
        {
          apiGroups: [''],
          resources: ['configmaps'],
          verbs: readWriteVerbs(),
        },
        {
          apiGroups: [''],
          resources: ['configmaps/status'],
          verbs: ['get', 'update', 'patch'],
        },
        {
          apiGroups: ['coordination.k8s.io'],
          resources: ['leases'],
          verbs: readWriteVerbs(),
        },
        {
          apiGroups: [''],
          resources: ['serviceaccounts/token'],
          verbs: ['create'],
        },
        { nonResourceURLs: ['/livez/ping'], verbs: ['head'] },
      ],
    },
    ...aggregatedClusterRoles('flux', {
      apiGroups: FLUX_GROUPS,
      resources: ['*'],
    }),
    clusterRoleBinding(
      'cluster-reconciler',
      'cluster-admin',
      ['kustomize-controller', 'helm-controller'].map(sa),
    ),
    clusterRoleBinding(
      'crd-controller',
      'crd-controller',
      [
        'kustomize-controller',
        'helm-controller',
        'source-controller',
        'notification-controller',
        'image-reflector-controller',
        'image-automation-controller',
        'source-watcher',
      ].map(sa),
    ),
  ];
}

function policyDocs(): Record<string, any>[] {
  const np = 'networking.k8s.io/v1';
  return [
    {
      apiVersion: np,
      kind: 'NetworkPolicy',
      metadata: { name: 'allow-egress' },
      spec: {
        egress: [{}],
        ingress: [{ from: [{ podSelector: {} }] }],
        podSelector: {},
        policyTypes: ['Ingress', 'Egress'],
      },
    },
    {
      apiVersion: np,
      kind: 'NetworkPolicy',
      metadata: { name: 'allow-scraping' },
      spec: {
        ingress: [
          {
            from: [{ namespaceSelector: {} }],
            ports: [{ port: 8080, protocol: 'TCP' }],
          },
        ],
        podSelector: {},
        policyTypes: ['Ingress'],
      },
    },
    {
      apiVersion: np,
      kind: 'NetworkPolicy',
      metadata: { name: 'allow-webhooks' },
      spec: {
        ingress: [
          {
            from: [{ namespaceSelector: {} }],
            ports: [{ port: 9292, protocol: 'TCP' }],
          },
        ],
        podSelector: { matchLabels: { app: 'notification-controller' } },
        policyTypes: ['Ingress'],
      },
    },
  ];
}

/** Multi-document YAML like `kustomize build` prints it. */
export function toMultiDocYaml(docs: unknown[]): string {
  return docs.map(d => YAML.stringify(d, { lineWidth: 0 })).join('---\n');
}

/** Builds the bundle's files and packs them as `manifests.tar.gz`. */
export async function buildFluxBundle(
  opts: BuildFluxBundleOptions,
): Promise<FluxBundle> {
  if (!/^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(opts.version)) {
    throw new Error(
      `buildFluxBundle: version "${opts.version}" is not a semver like v2.9.4`,
    );
  }
  const pad = opts.crdPadBytes ?? 0;
  const vVersion = opts.version.startsWith('v')
    ? opts.version
    : `v${opts.version}`;
  const tagFor = (c: FluxComponent) =>
    vVersion === 'v2.9.4' ? V2_9_4_TAGS[c] : vVersion;
  const dropBeta = semver.gte(
    semver.coerce(vVersion) ?? '0.0.0',
    FLUX_UPGRADE_VERSIONS.to,
  );
  const files: Record<string, string> = {};
  for (const c of FLUX_COMPONENTS)
    files[`${c}.yaml`] = toMultiDocYaml(
      controllerDocs(c, tagFor(c), pad, dropBeta),
    );
  files['rbac.yaml'] = toMultiDocYaml(rbacDocs());
  files['policies.yaml'] = toMultiDocYaml(policyDocs());
  for (const [name, content] of Object.entries(opts.overrideFiles ?? {})) {
    if (content === null) delete files[name];
    else files[name] = content;
  }
  const tarball = await packFlat(files);
  return {
    version: opts.version,
    tarball,
    sha256: crypto.createHash('sha256').update(tarball).digest('hex'),
    files,
  };
}

/** Packs files (flat) into a deterministic .tar.gz (fixed mtime, portable headers, sorted names). */
export async function packFlat(
  files: Record<string, string | Buffer>,
): Promise<Buffer> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'flux-bundle-'));
  try {
    const names = Object.keys(files).sort();
    const mtime = new Date('2020-01-01T00:00:00Z');
    for (const name of names) {
      if (name.includes('/') || name.startsWith('.'))
        throw new Error(`bundle file names are flat: ${name}`);
      const f = path.join(dir, name);
      await fs.writeFile(f, files[name], { mode: 0o644 });
      await fs.utimes(f, mtime, mtime);
    }
    const chunks: Buffer[] = [];
    const stream = tar.c(
      { gzip: true, cwd: dir, portable: true, mtime, noDirRecurse: true },
      names,
    );
    for await (const chunk of stream as AsyncIterable<Buffer>)
      chunks.push(Buffer.from(chunk));
    return Buffer.concat(chunks);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** Builds the bundles of both upgrade versions (`FLUX_UPGRADE_VERSIONS`). */
export async function buildFluxUpgradeBundles(
  opts: Omit<BuildFluxBundleOptions, 'version'> = {},
): Promise<{ from: FluxBundle; to: FluxBundle }> {
  const [from, to] = await Promise.all([
    buildFluxBundle({ ...opts, version: FLUX_UPGRADE_VERSIONS.from }),
    buildFluxBundle({ ...opts, version: FLUX_UPGRADE_VERSIONS.to }),
  ]);
  return { from, to };
}

/**
 * `fluxBootstrap.kubernetesVersions` for the test ground: its kube-apiserver is Debian's v1.20,
 * older than any fixture Flux version supports, so configs that install Flux on it widen the range
 * for the fixture versions — what the setting is for when a distribution's version misleads.
 * Tests of the version check itself leave it out.
 */
export const TEST_GROUND_KUBERNETES_VERSIONS = [
  { flux: 'v2.9', minimum: 'v1.20.0' },
  { flux: 'v2.10', minimum: 'v1.20.0' },
];
