import {
  ClusterBootstrapStatus,
  isSteadyClusterState,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import { useCallback, useEffect, useRef, useState } from 'react';
import type { FluxBootstrapApi } from '../../api/FluxBootstrapApi';
import {
  POLL_INITIAL_MS,
  POLL_MAX_MS,
} from '../FluxBootstrapCard/useEntityClusters';

/** A configured cluster on the fleet page: its status once its read has finished. */
export interface FleetCluster {
  name: string;
  title?: string;
  status?: ClusterBootstrapStatus;
}

export interface FleetState {
  clusters: FleetCluster[];
  /** True from the request until the list of clusters arrived (the first time). */
  loading: boolean;
  /** True while a stream is open (statuses may still arrive). */
  streaming: boolean;
  error?: Error;
  /** True while the page reads again on its own (a cluster is not settled). */
  polling: boolean;
  /** Reads every cluster again, bypassing the backend's cache. */
  refresh: () => void;
  /** Replaces one cluster's status (e.g. the answer of an operate action). */
  setStatus: (status: ClusterBootstrapStatus) => void;
}

/** How often arrived statuses are rendered while a stream runs (one render per batch). */
export const FLUSH_MS = 50;

/** What the page shows of a read: statuses minus the time they were read. */
function signature(clusters: FleetCluster[]): string {
  return JSON.stringify(
    clusters.map(c => {
      if (!c.status) return c.name;
      const { checkedAt: _checkedAt, ...rest } = c.status;
      return rest;
    }),
  );
}

/**
 * Streams every configured cluster's status (`GET /clusters/stream`): the list first, each
 * status as soon as its read finishes (rendered in batches every {@link FLUSH_MS}). Then, like
 * the card, reads again while a cluster is in a state that moves on by itself: after
 * {@link POLL_INITIAL_MS}, twice as long while nothing changes (up to {@link POLL_MAX_MS}); not
 * while the page is hidden; never after unmount, which also aborts the open stream.
 */
export function useFleetStatus(api: FluxBootstrapApi): FleetState {
  const [clusters, setClusters] = useState<FleetCluster[]>([]);
  const [loading, setLoading] = useState(true);
  const [streaming, setStreaming] = useState(false);
  const [error, setError] = useState<Error>();
  const [polling, setPolling] = useState(false);
  const [reload, setReload] = useState(0);
  const latest = useRef<FleetCluster[]>([]);

  useEffect(() => {
    let cancelled = false;
    let controller: AbortController | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let delay = POLL_INITIAL_MS;
    let last: string | undefined;

    const schedule = (ms: number) => {
      timer = setTimeout(tick, ms); // eslint-disable-line @typescript-eslint/no-use-before-define
    };

    const stream = async (refresh: boolean) => {
      controller = new AbortController();
      const signal = controller.signal;
      let order: FleetCluster[] = latest.current;
      let index = new Map(order.map((c, i) => [c.name, i]));
      let pending: ClusterBootstrapStatus[] = [];
      let flushTimer: ReturnType<typeof setTimeout> | undefined;
      const flush = () => {
        flushTimer = undefined;
        if (cancelled || pending.length === 0) return;
        const next = order.slice();
        for (const status of pending) {
          const i = index.get(status.cluster);
          if (i === undefined) continue;
          next[i] = { ...next[i], status };
        }
        pending = [];
        order = next;
        latest.current = next;
        setClusters(next);
      };
      setStreaming(true);
      try {
        await api.streamClusters({
          refresh,
          signal,
          onLine: line => {
            if (cancelled) return;
            if (line.type === 'clusters') {
              const known = new Map(latest.current.map(c => [c.name, c]));
              // Keep the statuses shown so far until the new ones arrive.
              order = line.items.map(item => ({
                ...item,
                status: known.get(item.name)?.status,
              }));
              index = new Map(order.map((c, i) => [c.name, i]));
              latest.current = order;
              setClusters(order);
              setLoading(false);
              setError(undefined);
            } else if (line.type === 'status') {
              pending.push(line.status);
              if (!flushTimer) flushTimer = setTimeout(flush, FLUSH_MS);
            } else if (line.type === 'error') {
              throw Object.assign(new Error(line.error.message), {
                name: line.error.name,
              });
            }
          },
        });
        if (flushTimer) clearTimeout(flushTimer);
        flush();
        if (cancelled) return;
        const sig = signature(latest.current);
        delay =
          last === undefined || sig !== last
            ? POLL_INITIAL_MS
            : Math.min(delay * 2, POLL_MAX_MS);
        last = sig;
        const unsettled = latest.current.some(
          c => c.status && !isSteadyClusterState(c.status.state),
        );
        setPolling(unsettled);
        if (unsettled) schedule(delay);
      } catch (e) {
        if (flushTimer) clearTimeout(flushTimer);
        if (cancelled) return;
        flush();
        setError(e as Error);
        setLoading(false);
        // A failed poll keeps what is shown and tries again later; a failed first read stops.
        if (latest.current.length > 0) {
          delay = Math.min(delay * 2, POLL_MAX_MS);
          schedule(delay);
        }
      } finally {
        if (!cancelled) setStreaming(false);
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
      stream(false);
    }

    stream(reload > 0);
    return () => {
      cancelled = true;
      controller?.abort();
      if (timer) clearTimeout(timer);
    };
  }, [api, reload]);

  const refresh = useCallback(() => setReload(n => n + 1), []);
  const setStatus = useCallback((status: ClusterBootstrapStatus) => {
    const next = latest.current.map(c =>
      c.name === status.cluster ? { ...c, status } : c,
    );
    latest.current = next;
    setClusters(next);
  }, []);

  return { clusters, loading, streaming, error, polling, refresh, setStatus };
}
