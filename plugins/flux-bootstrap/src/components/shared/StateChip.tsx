import type { ClusterBootstrapState } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import {
  RiCheckboxCircleLine,
  RiCloseCircleLine,
  RiGitPullRequestLine,
  RiIndeterminateCircleLine,
  RiLoader4Line,
  RiLockLine,
  RiPauseCircleLine,
  RiWifiOffLine,
} from '@remixicon/react';
import type { CSSProperties, ReactElement } from 'react';

/** The words of each state, as the card, the fleet page and the tests show them. @public */
export const STATE_LABEL: Record<ClusterBootstrapState, string> = {
  ready: 'Ready',
  failing: 'Failing',
  installing: 'Installing',
  'awaiting-merge': 'Awaiting merge',
  suspended: 'Suspended',
  'not-installed': 'Not installed',
  unreachable: 'Unreachable',
  forbidden: 'Forbidden',
};

type Tone = 'success' | 'danger' | 'warning' | 'info' | 'neutral';

/**
 * Colour, icon and words of each state: two states may share a colour (failing and unreachable
 * are both danger), never an icon or words, so a state reads without colour too.
 */
const LOOK: Record<
  ClusterBootstrapState,
  { tone: Tone; icon: ReactElement; description: string }
> = {
  ready: {
    tone: 'success',
    icon: <RiCheckboxCircleLine size={14} aria-hidden />,
    description: 'Flux is installed and its sync is ready',
  },
  failing: {
    tone: 'danger',
    icon: <RiCloseCircleLine size={14} aria-hidden />,
    description: 'Flux reports an error',
  },
  unreachable: {
    tone: 'danger',
    icon: <RiWifiOffLine size={14} aria-hidden />,
    description: 'The API server could not be reached',
  },
  forbidden: {
    tone: 'warning',
    icon: <RiLockLine size={14} aria-hidden />,
    description: 'The cluster refused the configured credentials',
  },
  suspended: {
    tone: 'warning',
    icon: <RiPauseCircleLine size={14} aria-hidden />,
    description: 'The Flux sync is suspended',
  },
  installing: {
    tone: 'info',
    icon: <RiLoader4Line size={14} aria-hidden />,
    description: 'Flux is installed and not reconciled yet',
  },
  'awaiting-merge': {
    tone: 'info',
    icon: <RiGitPullRequestLine size={14} aria-hidden />,
    description: 'The Flux sync waits for a pull request to be merged',
  },
  'not-installed': {
    tone: 'neutral',
    icon: <RiIndeterminateCircleLine size={14} aria-hidden />,
    description: 'Flux is not installed',
  },
};

const TONE_STYLE: Record<Tone, CSSProperties> = {
  success: {
    color: 'var(--bui-positive-fg-subdued)',
    background: 'var(--bui-positive-bg-subdued)',
    borderColor: 'var(--bui-positive-border)',
  },
  danger: {
    color: 'var(--bui-negative-fg-subdued)',
    background: 'var(--bui-negative-bg-subdued)',
    borderColor: 'var(--bui-negative-border)',
  },
  warning: {
    color: 'var(--bui-warning-fg-subdued)',
    background: 'var(--bui-warning-bg-subdued)',
    borderColor: 'var(--bui-warning-border)',
  },
  info: {
    color: 'var(--bui-announcement-fg-subdued)',
    background: 'var(--bui-announcement-bg-subdued)',
    borderColor: 'var(--bui-announcement-border)',
  },
  neutral: {
    color: 'var(--bui-fg-secondary)',
    background: 'var(--bui-bg-neutral-2)',
    borderColor: 'var(--bui-border-2)',
  },
};

/** Tone of a state (for counts and filters that colour by state). */
export function stateTone(state: ClusterBootstrapState): Tone {
  return LOOK[state]?.tone ?? 'neutral';
}

/** The icon of a state, hidden from assistive technology (the words say it). */
export function StateIcon(props: { state: ClusterBootstrapState }) {
  return LOOK[props.state]?.icon ?? LOOK['not-installed'].icon;
}

/**
 * A cluster state as a chip: colour, icon and words. Its accessible name is "State: <words>",
 * its title says what the state means.
 * @public
 */
export function StateChip(props: { state: ClusterBootstrapState }) {
  const look = LOOK[props.state] ?? LOOK['not-installed'];
  const label = STATE_LABEL[props.state] ?? props.state;
  return (
    <span
      role="img"
      aria-label={`State: ${label}`}
      title={look.description}
      data-state={props.state}
      style={{
        display: 'inline-flex',
        alignItems: 'center',
        gap: 4,
        padding: '1px 8px',
        borderRadius: 999,
        border: '1px solid',
        fontSize: 'var(--bui-font-size-2, 12px)',
        fontWeight: 600,
        lineHeight: '20px',
        whiteSpace: 'nowrap',
        ...TONE_STYLE[look.tone],
      }}
    >
      {look.icon}
      <span>{label}</span>
    </span>
  );
}
