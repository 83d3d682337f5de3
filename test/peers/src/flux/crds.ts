/**
 * CustomResourceDefinitions of the Flux bundle fixture: the real groups, kinds, plurals, served
 * versions and status subresources, with small structural schemas (apiextensions.k8s.io/v1,
 * no x-kubernetes-validations, so a 1.20 apiserver accepts them). GitRepository and Kustomization
 * have typed spec/status schemas so that what the generator writes and what the simulator reports
 * is validated by the apiserver; the other kinds keep unknown fields.
 */

type Schema = Record<string, unknown>;

const str = (description: string, extra: Schema = {}): Schema => ({
  type: 'string',
  description,
  ...extra,
});
const bool = (description: string): Schema => ({
  type: 'boolean',
  description,
});
const duration = (description: string): Schema =>
  str(description, { pattern: '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$' });
const localRef = (description: string): Schema => ({
  type: 'object',
  description,
  required: ['name'],
  properties: { name: str('Name of the referent.') },
});
const openObject = (description: string): Schema => ({
  type: 'object',
  description,
  'x-kubernetes-preserve-unknown-fields': true,
});

export const conditionsSchema: Schema = {
  type: 'array',
  description: 'Conditions holds the conditions of the object.',
  items: {
    type: 'object',
    description:
      'Condition contains details for one aspect of the current state of this API Resource.',
    required: ['lastTransitionTime', 'message', 'reason', 'status', 'type'],
    properties: {
      lastTransitionTime: str(
        'Last time the condition transitioned from one status to another.',
        { format: 'date-time' },
      ),
      message: str(
        'A human readable message indicating details about the transition.',
        { maxLength: 32768 },
      ),
      observedGeneration: {
        type: 'integer',
        format: 'int64',
        minimum: 0,
        description:
          'The .metadata.generation the condition was set based upon.',
      },
      reason: str(
        'Programmatic identifier of the reason for the last transition.',
        { maxLength: 1024, minLength: 1 },
      ),
      status: str('Status of the condition, one of True, False, Unknown.', {
        enum: ['True', 'False', 'Unknown'],
      }),
      type: str('Type of condition in CamelCase.', { maxLength: 316 }),
    },
  },
};

const artifactSchema: Schema = {
  type: 'object',
  description: 'Artifact represents the last successful reconciliation.',
  required: ['lastUpdateTime', 'path', 'revision', 'url'],
  properties: {
    digest: str('Digest of the file, in the form <algorithm>:<checksum>.', {
      pattern: '^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$',
    }),
    lastUpdateTime: str(
      'LastUpdateTime is the timestamp of the last update of the Artifact.',
      { format: 'date-time' },
    ),
    metadata: {
      type: 'object',
      additionalProperties: { type: 'string' },
      description: 'Metadata of the Artifact.',
    },
    path: str('Path is the relative file path of the Artifact.'),
    revision: str(
      'Revision is a human-readable identifier, e.g. main@sha1:<commit>.',
    ),
    size: {
      type: 'integer',
      format: 'int64',
      description: 'Size of the Artifact file in bytes.',
    },
    url: str(
      'URL is the HTTP address of the Artifact as exposed by the controller.',
    ),
  },
};

const genericStatus = (): Schema => ({
  type: 'object',
  'x-kubernetes-preserve-unknown-fields': true,
  properties: {
    conditions: conditionsSchema,
    observedGeneration: { type: 'integer', format: 'int64' },
    lastHandledReconcileAt: str(
      'The last manual reconciliation request handled.',
    ),
  },
});

/** A custom resource's schema: the standard apiVersion, kind and metadata, then spec and status. */
const resourceSchema = (
  description: string,
  spec: Schema,
  status: Schema,
): Schema => ({
  type: 'object',
  description,
  properties: {
    apiVersion: str(
      'APIVersion defines the versioned schema of this representation of an object.',
    ),
    kind: str(
      'Kind is a string value representing the REST resource this object represents.',
    ),
    metadata: { type: 'object' },
    spec,
    status,
  },
});

const gitRepositorySchema: Schema = resourceSchema(
  'GitRepository is the Schema for the gitrepositories API.',
  {
    type: 'object',
    description:
      'GitRepositorySpec specifies the required configuration to produce an Artifact for a Git repository.',
    required: ['interval', 'url'],
    properties: {
      url: str(
        'URL specifies the Git repository URL, it can be an HTTP/S or SSH address.',
        { pattern: '^(http|https|ssh)://.*$' },
      ),
      secretRef: localRef(
        'SecretRef specifies the Secret containing authentication credentials.',
      ),
      provider: str('Provider used for authentication.', {
        enum: ['generic', 'azure', 'github'],
      }),
      interval: duration(
        'Interval at which the GitRepository URL is checked for updates.',
      ),
      timeout: duration(
        'Timeout for Git operations like cloning, defaults to 60s.',
      ),
      ref: {
        type: 'object',
        description:
          'Reference specifies the Git reference to resolve and monitor for changes.',
        properties: {
          branch: str(
            'Branch to check out, defaults to master if no other field is defined.',
          ),
          tag: str('Tag to check out.'),
          semver: str('SemVer tag expression to check out.'),
          name: str('Name of the reference to check out.'),
          commit: str('Commit SHA to check out.'),
        },
      },
      verify: openObject('Verification of the commit signature.'),
      proxySecretRef: localRef(
        'ProxySecretRef specifies the Secret containing the proxy configuration.',
      ),
      ignore: str(
        'Ignore overrides the set of excluded patterns in the .sourceignore format.',
      ),
      suspend: bool(
        'Suspend tells the controller to suspend the reconciliation of this GitRepository.',
      ),
      recurseSubmodules: bool(
        'RecurseSubmodules enables the initialization of all submodules.',
      ),
      include: { type: 'array', items: openObject('GitRepositoryInclude.') },
      sparseCheckout: {
        type: 'array',
        items: { type: 'string' },
        description: 'Directories to check out.',
      },
    },
  },
  {
    type: 'object',
    description:
      'GitRepositoryStatus records the observed state of a Git repository.',
    properties: {
      artifact: artifactSchema,
      conditions: conditionsSchema,
      includedArtifacts: { type: 'array', items: artifactSchema },
      lastHandledReconcileAt: str(
        'The last manual reconciliation request handled.',
      ),
      observedGeneration: {
        type: 'integer',
        format: 'int64',
        description: 'The last observed generation.',
      },
      observedIgnore: str('The observed .spec.ignore.'),
      observedInclude: {
        type: 'array',
        items: openObject('GitRepositoryInclude.'),
      },
      observedRecurseSubmodules: bool('The observed .spec.recurseSubmodules.'),
      observedSparseCheckout: { type: 'array', items: { type: 'string' } },
      sourceVerificationMode: str('The last used verification mode.'),
    },
  },
);

const kustomizationSchema: Schema = resourceSchema(
  'Kustomization is the Schema for the kustomizations API.',
  {
    type: 'object',
    description:
      'KustomizationSpec defines the configuration to calculate the desired state from a Source using Kustomize.',
    required: ['interval', 'prune', 'sourceRef'],
    properties: {
      interval: duration(
        'The interval at which to reconcile the Kustomization.',
      ),
      retryInterval: duration(
        'The interval at which to retry a previously failed reconciliation.',
      ),
      timeout: duration(
        'Timeout for validation, apply and health checking operations.',
      ),
      path: str(
        'Path to the directory containing the kustomization.yaml file.',
      ),
      prune: bool('Prune enables garbage collection.'),
      wait: bool(
        'Wait instructs the controller to check the health of all the reconciled resources.',
      ),
      force: bool(
        'Force instructs the controller to recreate resources when patching fails.',
      ),
      suspend: bool(
        'This flag tells the controller to suspend subsequent kustomize executions.',
      ),
      targetNamespace: str(
        'TargetNamespace sets or overrides the namespace in the kustomization.yaml file.',
        { maxLength: 63, minLength: 1 },
      ),
      serviceAccountName: str(
        'The name of the Kubernetes service account to impersonate.',
      ),
      sourceRef: {
        type: 'object',
        description: 'Reference of the source where the kustomization file is.',
        required: ['kind', 'name'],
        properties: {
          apiVersion: str('API version of the referent.'),
          kind: str('Kind of the referent.', {
            enum: [
              'OCIRepository',
              'GitRepository',
              'Bucket',
              'ExternalArtifact',
            ],
          }),
          name: str('Name of the referent.'),
          namespace: str(
            'Namespace of the referent, defaults to the namespace of the Kustomization.',
          ),
        },
      },
      dependsOn: {
        type: 'array',
        items: openObject('Dependency reference.'),
      },
      patches: {
        type: 'array',
        items: openObject('Strategic merge and JSON patches.'),
      },
      images: { type: 'array', items: openObject('Image overrides.') },
      components: { type: 'array', items: { type: 'string' } },
      ignoreMissingComponents: bool(
        'IgnoreMissingComponents instructs the controller to ignore missing components.',
      ),
      namePrefix: str(
        'NamePrefix is a prefix added to the names of all resources.',
        { maxLength: 200, minLength: 1 },
      ),
      nameSuffix: str(
        'NameSuffix is a suffix added to the names of all resources.',
        { maxLength: 200, minLength: 1 },
      ),
      commonMetadata: openObject(
        'CommonMetadata specifies the common labels and annotations.',
      ),
      postBuild: openObject(
        'PostBuild describes which actions to perform on the YAML manifest.',
      ),
      decryption: openObject(
        'Decrypt Kubernetes secrets before applying them on the cluster.',
      ),
      healthChecks: {
        type: 'array',
        items: openObject(
          'A list of resources to be included in the health assessment.',
        ),
      },
      kubeConfig: openObject(
        'The KubeConfig for reconciling the Kustomization on a remote cluster.',
      ),
      deletionPolicy: str(
        'DeletionPolicy can be used to control garbage collection.',
        { enum: ['MirrorPrune', 'Delete', 'WaitForTermination', 'Orphan'] },
      ),
    },
  },
  {
    type: 'object',
    description:
      'KustomizationStatus defines the observed state of a kustomization.',
    properties: {
      conditions: conditionsSchema,
      inventory: {
        type: 'object',
        description:
          'Inventory contains the list of Kubernetes resource object references.',
        required: ['entries'],
        properties: {
          entries: {
            type: 'array',
            items: {
              type: 'object',
              required: ['id', 'v'],
              properties: { id: { type: 'string' }, v: { type: 'string' } },
            },
          },
        },
      },
      lastAppliedOriginRevision: str(
        'The last successfully applied origin revision.',
      ),
      lastAppliedRevision: str('The last successfully applied revision.'),
      lastAttemptedRevision: str(
        'LastAttemptedRevision is the revision of the last reconciliation attempt.',
      ),
      lastHandledReconcileAt: str(
        'The last manual reconciliation request handled.',
      ),
      observedGeneration: {
        type: 'integer',
        format: 'int64',
        description: 'ObservedGeneration is the last reconciled generation.',
      },
    },
  },
);

const genericSchema = (kind: string): Schema =>
  resourceSchema(
    `${kind} is a Flux custom resource.`,
    openObject(`${kind}Spec.`),
    genericStatus(),
  );

export interface CrdDef {
  component: string;
  group: string;
  kind: string;
  plural: string;
  singular: string;
  shortNames?: string[];
  /** served versions, the LAST one is the storage version */
  versions: string[];
  schema?: Schema;
  urlColumn?: boolean;
}

export const FLUX_CRDS: CrdDef[] = [
  {
    component: 'source-controller',
    group: 'source.toolkit.fluxcd.io',
    kind: 'Bucket',
    plural: 'buckets',
    singular: 'bucket',
    versions: ['v1beta2', 'v1'],
  },
  {
    component: 'source-controller',
    group: 'source.toolkit.fluxcd.io',
    kind: 'ExternalArtifact',
    plural: 'externalartifacts',
    singular: 'externalartifact',
    versions: ['v1'],
  },
  {
    component: 'source-controller',
    group: 'source.toolkit.fluxcd.io',
    kind: 'GitRepository',
    plural: 'gitrepositories',
    singular: 'gitrepository',
    shortNames: ['gitrepo'],
    versions: ['v1beta2', 'v1'],
    schema: gitRepositorySchema,
    urlColumn: true,
  },
  {
    component: 'source-controller',
    group: 'source.toolkit.fluxcd.io',
    kind: 'HelmChart',
    plural: 'helmcharts',
    singular: 'helmchart',
    shortNames: ['hc'],
    versions: ['v1beta2', 'v1'],
  },
  {
    component: 'source-controller',
    group: 'source.toolkit.fluxcd.io',
    kind: 'HelmRepository',
    plural: 'helmrepositories',
    singular: 'helmrepository',
    shortNames: ['helmrepo'],
    versions: ['v1beta2', 'v1'],
  },
  {
    component: 'source-controller',
    group: 'source.toolkit.fluxcd.io',
    kind: 'OCIRepository',
    plural: 'ocirepositories',
    singular: 'ocirepository',
    shortNames: ['ocirepo'],
    versions: ['v1beta2', 'v1'],
  },
  {
    component: 'kustomize-controller',
    group: 'kustomize.toolkit.fluxcd.io',
    kind: 'Kustomization',
    plural: 'kustomizations',
    singular: 'kustomization',
    shortNames: ['ks'],
    versions: ['v1beta2', 'v1'],
    schema: kustomizationSchema,
  },
  {
    component: 'helm-controller',
    group: 'helm.toolkit.fluxcd.io',
    kind: 'HelmRelease',
    plural: 'helmreleases',
    singular: 'helmrelease',
    shortNames: ['hr'],
    versions: ['v2beta2', 'v2'],
  },
  {
    component: 'notification-controller',
    group: 'notification.toolkit.fluxcd.io',
    kind: 'Alert',
    plural: 'alerts',
    singular: 'alert',
    versions: ['v1beta2', 'v1beta3'],
  },
  {
    component: 'notification-controller',
    group: 'notification.toolkit.fluxcd.io',
    kind: 'Provider',
    plural: 'providers',
    singular: 'provider',
    versions: ['v1beta2', 'v1beta3'],
  },
  {
    component: 'notification-controller',
    group: 'notification.toolkit.fluxcd.io',
    kind: 'Receiver',
    plural: 'receivers',
    singular: 'receiver',
    versions: ['v1beta2', 'v1'],
  },
  {
    component: 'image-reflector-controller',
    group: 'image.toolkit.fluxcd.io',
    kind: 'ImagePolicy',
    plural: 'imagepolicies',
    singular: 'imagepolicy',
    versions: ['v1beta2', 'v1'],
  },
  {
    component: 'image-reflector-controller',
    group: 'image.toolkit.fluxcd.io',
    kind: 'ImageRepository',
    plural: 'imagerepositories',
    singular: 'imagerepository',
    versions: ['v1beta2', 'v1'],
  },
  {
    component: 'image-automation-controller',
    group: 'image.toolkit.fluxcd.io',
    kind: 'ImageUpdateAutomation',
    plural: 'imageupdateautomations',
    singular: 'imageupdateautomation',
    versions: ['v1beta2', 'v1'],
  },
  {
    component: 'source-watcher',
    group: 'source.extensions.fluxcd.io',
    kind: 'ArtifactGenerator',
    plural: 'artifactgenerators',
    singular: 'artifactgenerator',
    versions: ['v1beta1'],
  },
];

const PAD_WORDS =
  'Lorem ipsum fixture padding that stands in for the long field descriptions of the real Flux CRDs ' +
  '(generated by controller-gen from Go doc comments) so that parsing, applying and diffing costs are realistic. ';

/** The printer columns Age, Ready and Status of a Flux custom resource (a fresh list). */
export const readyColumns = (): Schema[] => [
  { jsonPath: '.metadata.creationTimestamp', name: 'Age', type: 'date' },
  {
    jsonPath: '.status.conditions[?(@.type=="Ready")].status',
    name: 'Ready',
    type: 'string',
  },
  {
    jsonPath: '.status.conditions[?(@.type=="Ready")].message',
    name: 'Status',
    type: 'string',
  },
];

/**
 * Builds one CRD object. `padBytes` > 0 grows the schema with documented optional string fields
 * under `spec.properties.fixturePadding` until the CRD's JSON reaches about that size.
 */
export function crdObject(
  def: CrdDef,
  padBytes = 0,
  opts: { dropBetaVersions?: boolean } = {},
): Record<string, any> {
  const storage = def.versions[def.versions.length - 1];
  // From the fixture's Flux v2.10.0 on, the deprecated v1beta2 APIs of the kinds whose storage
  // version is v1 are no longer served (a CRD change an upgrade test can observe).
  const versions =
    opts.dropBetaVersions && storage === 'v1'
      ? def.versions.filter(v => v !== 'v1beta2')
      : def.versions;
  const schema = JSON.parse(
    JSON.stringify(def.schema ?? genericSchema(def.kind)),
  );
  const columns: Schema[] = [
    ...(def.urlColumn
      ? [{ jsonPath: '.spec.url', name: 'URL', type: 'string' }]
      : []),
    ...readyColumns(),
  ];
  const crd = {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      annotations: { 'controller-gen.kubebuilder.io/version': 'v0.19.0' },
      labels: {
        'app.kubernetes.io/component': def.component,
        'app.kubernetes.io/part-of': 'flux',
      },
      name: `${def.plural}.${def.group}`,
    },
    spec: {
      group: def.group,
      names: {
        ...(def.kind === 'GitRepository' || def.kind === 'Kustomization'
          ? { categories: ['flux'] }
          : {}),
        kind: def.kind,
        listKind: `${def.kind}List`,
        plural: def.plural,
        ...(def.shortNames ? { shortNames: def.shortNames } : {}),
        singular: def.singular,
      },
      scope: 'Namespaced',
      versions: versions.map(name => ({
        additionalPrinterColumns: columns,
        ...(name !== storage
          ? {
              deprecated: true,
              deprecationWarning: `${def.group}/${name} ${def.kind} is deprecated, upgrade to ${storage}`,
            }
          : {}),
        name,
        schema: {
          openAPIV3Schema:
            name === storage ? schema : JSON.parse(JSON.stringify(schema)),
        },
        served: true,
        storage: name === storage,
        subresources: { status: {} },
      })),
    },
  };
  if (padBytes > 0) {
    const storageSchema = crd.spec.versions[crd.spec.versions.length - 1].schema
      .openAPIV3Schema as any;
    const padding: Record<string, Schema> = {};
    storageSchema.properties.spec.properties =
      storageSchema.properties.spec.properties ?? {};
    storageSchema.properties.spec.properties.fixturePadding = {
      type: 'object',
      description:
        'Fields that only exist to give the fixture CRD a realistic size.',
      properties: padding,
    };
    let size = JSON.stringify(crd).length;
    for (let i = 0; size < padBytes; i++) {
      const key = `field${String(i).padStart(4, '0')}`;
      const value = {
        type: 'string',
        description: `Field ${i} of ${def.kind}. ${PAD_WORDS.repeat(4)}`,
      };
      padding[key] = value;
      size += JSON.stringify(key).length + JSON.stringify(value).length + 2; // ':' and ','
    }
  }
  return crd;
}
