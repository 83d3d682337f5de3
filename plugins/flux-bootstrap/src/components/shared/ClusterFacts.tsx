import {
  ClusterBootstrapStatus,
  FluxPullRequestInfo,
  PullRequestReviewer,
  shortSha,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import {
  Flex,
  Focusable,
  Link,
  Text,
  Tooltip,
  TooltipTrigger,
} from '@backstage/ui';
import {
  RiCheckLine,
  RiGitPullRequestLine,
  RiTimeLine,
  RiToolsLine,
} from '@remixicon/react';
import type { ReactNode } from 'react';
import { relativeTime } from '../FluxBootstrapCard/relativeTime';

/** A dash for a fact that is not known, read as "unknown". */
export function Unknown() {
  return (
    <Text color="secondary" aria-label="unknown">
      —
    </Text>
  );
}

/** A text with a tooltip that keyboard users reach too (the trigger is focusable). */
export function WithTooltip(props: { tip: string; children: ReactNode }) {
  return (
    <TooltipTrigger delay={300}>
      <Focusable>
        <button
          type="button"
          aria-label={props.tip}
          style={{
            font: 'inherit',
            color: 'inherit',
            background: 'none',
            border: 'none',
            padding: 0,
            textDecoration: 'underline dotted',
            cursor: 'help',
          }}
        >
          {props.children}
        </button>
      </Focusable>
      <Tooltip>{props.tip}</Tooltip>
    </TooltipTrigger>
  );
}

/** Who manages Flux on the cluster, in words. */
export function managerLabel(
  status: ClusterBootstrapStatus,
): string | undefined {
  const flux = status.flux;
  if (!flux) return undefined;
  if (flux.manager === 'flux-operator' || flux.instance) return 'Flux Operator';
  if (flux.manager === 'flux-bootstrap') return 'flux bootstrap';
  return flux.managedBy;
}

/** Controllers ready out of all, e.g. "4/4". */
export function controllersReady(status: ClusterBootstrapStatus): string {
  const ready = status.components.filter(c => c.ready).length;
  return `${ready}/${status.components.length}`;
}

/** "in sync", "behind" or "sync unknown", for the applied revision. */
export function syncWords(
  status: ClusterBootstrapStatus,
): 'in sync' | 'behind' | 'sync unknown' | undefined {
  if (status.inSync === true) return 'in sync';
  if (status.inSync === false) return 'behind';
  if (status.sync?.lastAppliedRevision && status.repository?.message)
    return 'sync unknown';
  return undefined;
}

const READY_WORDS = { true: 'True', false: 'False', null: 'Unknown' } as const;
const READY_COLOUR = {
  true: 'success',
  false: 'danger',
  null: 'secondary',
} as const;
const REVIEW_COLOUR = {
  APPROVED: 'success',
  NEEDS_WORK: 'warning',
  UNAPPROVED: 'secondary',
} as const;

/** Flux's version, manager, controllers, the operator's instance and the API server version. */
export function FluxFacts({ status }: { status: ClusterBootstrapStatus }) {
  const { flux, components } = status;
  const instance = flux?.instance;
  const manager = managerLabel(status);
  const notReady = components.filter(c => !c.ready);
  return (
    <Flex direction="column" gap="0.5">
      <Text variant="body-medium" weight="bold">
        {flux?.version ?? instance?.installedVersion ?? <Unknown />}
      </Text>
      {manager && (
        <Text variant="body-small" color="secondary">
          managed by {manager}
        </Text>
      )}
      {instance && (
        <Flex
          direction="column"
          gap="0.5"
          aria-label={`FluxInstance ${instance.namespace}/${instance.name}`}
          role="group"
        >
          <Text variant="body-small">
            FluxInstance {instance.name}: requested{' '}
            <strong>{instance.requestedVersion ?? 'any'}</strong>
            {instance.installedVersion && (
              <>
                , installed <strong>{instance.installedVersion}</strong>
              </>
            )}
          </Text>
          <Text
            variant="body-small"
            color={READY_COLOUR[String(instance.ready) as 'true']}
          >
            Ready: {READY_WORDS[String(instance.ready) as 'true']}
            {instance.lastAppliedRevision && (
              <>
                {' · last applied '}
                <code
                  title={instance.lastAppliedRevision}
                  style={{ wordBreak: 'break-all' }}
                >
                  {instance.lastAppliedRevision}
                </code>
              </>
            )}
          </Text>
        </Flex>
      )}
      {components.length > 0 && (
        <Text variant="body-small">
          <WithTooltip
            tip={components
              .map(
                c =>
                  `${c.name}${c.tag ? ` ${c.tag}` : ''}: ${
                    c.ready ? 'ready' : c.message ?? 'not ready'
                  }`,
              )
              .join('; ')}
          >
            controllers {controllersReady(status)} ready
          </WithTooltip>
        </Text>
      )}
      {notReady.length > 0 && (
        <Text variant="body-small" color="warning">
          not ready: {notReady.map(c => c.name).join(', ')}
        </Text>
      )}
      {status.kubernetesVersion && (
        <Text variant="body-small" color="secondary">
          Kubernetes {status.kubernetesVersion}
        </Text>
      )}
    </Flex>
  );
}

/** The applied commit (linked to Bitbucket when known) and whether it is the branch head. */
export function AppliedRevision({
  status,
}: {
  status: ClusterBootstrapStatus;
}) {
  const { sync, repository } = status;
  const applied = shortSha(sync?.lastAppliedRevision);
  if (!applied) return <Unknown />;
  const words = syncWords(status);
  return (
    <Text variant="body-small">
      applied{' '}
      {repository?.commitUrl ? (
        <Link
          href={repository.commitUrl}
          title={sync?.lastAppliedRevision}
          aria-label={`commit ${applied}`}
          variant="body-small"
        >
          <code>{applied}</code>
        </Link>
      ) : (
        <code title={sync?.lastAppliedRevision}>{applied}</code>
      )}
      {words && ' · '}
      {words === 'in sync' && (
        <Text as="span" variant="body-small" color="success">
          <RiCheckLine size={12} aria-hidden /> in sync
        </Text>
      )}
      {words === 'behind' && (
        <Text as="span" variant="body-small" color="warning" weight="bold">
          <WithTooltip
            tip={`Bitbucket has newer commits${
              repository?.headCommit
                ? ` (head ${repository.headCommit.slice(0, 8)})`
                : ''
            }`}
          >
            behind
          </WithTooltip>
        </Text>
      )}
      {words === 'sync unknown' && (
        <Text as="span" variant="body-small" color="secondary">
          <WithTooltip tip={repository?.message ?? ''}>
            sync unknown
          </WithTooltip>
        </Text>
      )}
    </Text>
  );
}

/** The source URL (linked to the repository), its branch, and the applied commit. */
export function SourceFacts({ status }: { status: ClusterBootstrapStatus }) {
  const { source, repository } = status;
  return (
    <Flex direction="column" gap="0.5">
      {source?.url ? (
        <Text variant="body-small" style={{ wordBreak: 'break-all' }}>
          {repository?.browseUrl ? (
            <Link href={repository.browseUrl} variant="body-small">
              {source.url}
            </Link>
          ) : (
            source.url
          )}
        </Text>
      ) : (
        <Unknown />
      )}
      {source?.branch && (
        <Text variant="body-small" color="secondary">
          branch {source.branch}
        </Text>
      )}
      {status.sync?.lastAppliedRevision && <AppliedRevision status={status} />}
    </Flex>
  );
}

/** When the sync Kustomization last changed its Ready condition, in words. */
export function LastReconcile(props: {
  status: ClusterBootstrapStatus;
  now: Date;
}) {
  const at = props.status.sync?.lastTransitionTime;
  const words = relativeTime(at, props.now);
  if (!words) return <Unknown />;
  return (
    <Text variant="body-small">
      <time dateTime={at} title={at}>
        <RiTimeLine size={12} aria-hidden /> {words}
      </time>
    </Text>
  );
}

const REVIEW_WORDS: Record<PullRequestReviewer['status'], string> = {
  APPROVED: 'approved',
  NEEDS_WORK: 'needs work',
  UNAPPROVED: 'not reviewed yet',
};

/** The pull request a cluster's sync waits for: "#12 flux/x → main", its reviewers' status. */
export function PullRequestFacts({ pr }: { pr: FluxPullRequestInfo }) {
  const title = `#${pr.id} ${pr.fromBranch} → ${pr.toBranch}`;
  return (
    <Flex direction="column" gap="0.5" role="group" aria-label="Pull request">
      <Text variant="body-small">
        <RiGitPullRequestLine size={12} aria-hidden /> Waiting for{' '}
        <Link href={pr.url} variant="body-small" target="_blank" rel="noopener">
          {title}
        </Link>{' '}
        ({pr.state.toLowerCase()}) to be merged
        {pr.title ? `: ${pr.title}` : ''}
      </Text>
      {pr.reviewers.length > 0 ? (
        <ul
          aria-label="Reviewers"
          style={{ margin: 0, paddingLeft: 16, listStyle: 'disc' }}
        >
          {pr.reviewers.map(r => (
            <li key={r.name}>
              <Text
                variant="body-small"
                color={REVIEW_COLOUR[r.status] ?? 'secondary'}
              >
                {r.displayName ?? r.name}: {REVIEW_WORDS[r.status]}
              </Text>
            </li>
          ))}
        </ul>
      ) : (
        <Text variant="body-small" color="secondary">
          No reviewers named yet.
        </Text>
      )}
    </Flex>
  );
}

/** What to do about a state, shown with its reason. */
export function advice(status: ClusterBootstrapStatus): string | undefined {
  switch (status.state) {
    case 'unreachable':
      return 'Check the cluster URL and CA (caData/caFile) in kubernetes.clusterLocatorMethods, and that the Backstage backend can reach the API server.';
    case 'forbidden':
      return 'The cluster refused the token configured for it (serviceAccountToken in kubernetes.clusterLocatorMethods). It needs to get CustomResourceDefinitions and list Deployments, Namespaces and Flux objects; see the flux-bootstrap-backend README for a read-only ClusterRole.';
    case 'not-installed':
      return 'Run the "Bootstrap Flux" template to install Flux on this cluster.';
    case 'suspended':
      return 'Resume it here (Resume) or with `flux resume kustomization` to reconcile from Git again.';
    case 'awaiting-merge':
      return 'Flux is installed; it applies the Flux manifests once the pull request is merged on Bitbucket.';
    default:
      return undefined;
  }
}

/** The reason of the state (or the sync's message when failing). */
export function reasonOf(status: ClusterBootstrapStatus): string | undefined {
  return (
    status.reason ??
    (status.state === 'failing' ? status.sync?.message : undefined) ??
    (status.state === 'failing' ? status.flux?.instance?.message : undefined)
  );
}

/** Reason, pull request and advice of a cluster, when there is any. */
export function ClusterDetails({ status }: { status: ClusterBootstrapStatus }) {
  const reason = reasonOf(status);
  const hint = advice(status);
  const pr = status.pullRequest;
  if (!reason && !hint && !pr) return null;
  return (
    <Flex
      direction="column"
      gap="1"
      role="group"
      aria-label={`${status.title ?? status.cluster}: details`}
      style={{
        borderLeft: '2px solid var(--bui-border-2, #ccc)',
        paddingLeft: 8,
      }}
    >
      {pr && <PullRequestFacts pr={pr} />}
      {reason && (
        <Text
          as="p"
          variant="body-small"
          style={{
            whiteSpace: 'pre-wrap',
            wordBreak: 'break-word',
            margin: 0,
          }}
        >
          {reason}
        </Text>
      )}
      {hint && (
        <Text
          as="p"
          variant="body-x-small"
          color="secondary"
          style={{ margin: 0 }}
        >
          <RiToolsLine size={12} aria-hidden /> {hint}
        </Text>
      )}
    </Flex>
  );
}
