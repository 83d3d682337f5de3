import type { CompoundEntityRef } from '@backstage/catalog-model';
import {
  EntityClustersResponse,
  isSteadyClusterState,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import { useEffect, useRef, useState } from 'react';
import type { FluxBootstrapApi } from '../../api/FluxBootstrapApi';

/** First wait before reading again while a cluster is not steady. */
export const POLL_INITIAL_MS = 5_000;
/** Longest wait between two reads (reached by doubling while nothing changes). */
export const POLL_MAX_MS = 60_000;

/** What the card shows of a read: its clusters minus the time they were read. */
function signature(value: EntityClustersResponse): string {
  return JSON.stringify(
    value.items.map(({ checkedAt: _checkedAt, ...rest }) => rest),
  );
}

/** The clusters that keep the card polling (not ready, failing, suspended or forbidden). */
export function unsettledClusters(value?: EntityClustersResponse): string[] {
  return (value?.items ?? [])
    .filter(item => !isSteadyClusterState(item.state))
    .map(item => item.title ?? item.cluster);
}

export interface EntityClustersState {
  /** True during the first read and a read the user asked for (not during polls). */
  loading: boolean;
  value?: EntityClustersResponse;
  /** The error of the first read (a failed poll keeps the last value and tries again later). */
  error?: Error;
  /** True while the card reads again on its own. */
  polling: boolean;
}

/**
 * Reads an entity's clusters and, while any of them is in a state that moves on by itself
 * (`not-installed`, `installing`, `unreachable`), reads again: after {@link POLL_INITIAL_MS}, then
 * twice as long each time nothing changed (up to {@link POLL_MAX_MS}), back to the start when
 * something did. Polls use the backend's cache (its short TTL for transitional states keeps them
 * fresh); `reload` > 0 asks for `refresh`. Stops when every cluster is steady, on unmount, and
 * skips reads while the page is hidden.
 */
export function useEntityClusters(options: {
  api: FluxBootstrapApi;
  entityRef: CompoundEntityRef;
  /** Stable key of the entity and the clusters it names; a change starts over. */
  key: string;
  enabled: boolean;
  reload: number;
}): EntityClustersState {
  const { api, entityRef, key, enabled, reload } = options;
  const [state, setState] = useState<EntityClustersState>({
    loading: enabled,
    polling: false,
  });
  // The latest entity ref without restarting the effect on every render.
  const refHolder = useRef(entityRef);
  refHolder.current = entityRef;
  const shownKey = useRef(key);

  useEffect(() => {
    if (!enabled) {
      setState({ loading: false, polling: false });
      return undefined;
    }
    let cancelled = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let delay = POLL_INITIAL_MS;
    let last: string | undefined;
    let hasValue = false;

    const schedule = (ms: number) => {
      timer = setTimeout(tick, ms); // eslint-disable-line @typescript-eslint/no-use-before-define
    };
    const read = async (refresh: boolean) => {
      try {
        const value = await api.getEntityClusters(refHolder.current, {
          refresh,
        });
        if (cancelled) return;
        hasValue = true;
        const sig = signature(value);
        delay =
          last === undefined || sig !== last
            ? POLL_INITIAL_MS
            : Math.min(delay * 2, POLL_MAX_MS);
        last = sig;
        const keepPolling = unsettledClusters(value).length > 0;
        setState({ loading: false, value, polling: keepPolling });
        if (keepPolling) schedule(delay);
      } catch (error) {
        if (cancelled) return;
        if (!hasValue) {
          setState({ loading: false, error: error as Error, polling: false });
          return;
        }
        // A failed poll: keep showing the last answer and try again later.
        delay = Math.min(delay * 2, POLL_MAX_MS);
        setState(s => ({ ...s, loading: false }));
        schedule(delay);
      }
    };
    function tick() {
      if (
        typeof document !== 'undefined' &&
        document.visibilityState === 'hidden'
      ) {
        schedule(delay);
        return;
      }
      read(false);
    }

    // A reload keeps showing the last answer meanwhile; another entity starts empty.
    const sameEntity = shownKey.current === key;
    shownKey.current = key;
    setState(s => ({
      loading: true,
      polling: false,
      value: sameEntity ? s.value : undefined,
    }));
    read(reload > 0);
    return () => {
      cancelled = true;
      if (timer) clearTimeout(timer);
    };
  }, [api, key, enabled, reload]);

  return state;
}
