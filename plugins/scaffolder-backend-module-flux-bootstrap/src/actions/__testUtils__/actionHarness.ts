/**
 * Test helper (not exported from the package): runs a scaffolder action the way the scaffolder
 * does, on top of `createMockActionContext` from `@backstage/plugin-scaffolder-node-test-utils`,
 * and collects what leaves it — log lines, outputs, checkpoint values, the error — so that a test
 * can assert on them and scan them for secrets.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigReader } from '@backstage/config';
import { createMockActionContext } from '@backstage/plugin-scaffolder-node-test-utils';

type JsonObject = Record<string, any>;

/** An action as the tests hold it: a built action or its factory. */
export interface RunnableAction {
  handler(ctx: any): Promise<void>;
}
export type ActionFactory = (options: any) => RunnableAction;

export interface CheckpointRecord {
  key: string;
  /** The value its function returned (absent when replayed, or while or when it threw). */
  value?: unknown;
  /** True when the value came from `checkpointStore` and the function did not run. */
  replayed: boolean;
  /** True once the function returned (or the value was replayed). */
  done: boolean;
}

export interface RunActionOptions {
  /** What the factory is called with, e.g. `{ config }` or `{ config, catalog }`. */
  factoryOptions?: Record<string, unknown>;
  secrets?: Record<string, string>;
  dryRun?: boolean;
  /** Default: a signal that never aborts. */
  signal?: AbortSignal;
  /** Used as is and kept. Default: a fresh temporary folder, removed after the run. */
  workspacePath?: string;
  /** Task state of checkpoints, as with scaffolder task recovery: stored keys are replayed. */
  checkpointStore?: Map<string, unknown>;
  /** Simulates a crash right after this checkpoint completed. */
  crashAfter?: string;
  /**
   * Checkpoint values go through JSON, as in the scaffolder's task store: what the action gets
   * back is the parsed copy, also on the first run.
   */
  jsonCheckpoints?: boolean;
  /** Replaces the recording checkpoint entirely (for tests that watch what happens inside one). */
  checkpoint?: (options: {
    key: string;
    fn: () => Promise<unknown>;
  }) => Promise<unknown>;
  /** Gets every text that left the action (see {@link ActionRun.produced}) as it is produced. */
  produced?: string[];
  /** Called with each log line as it is written. */
  onLog?: (line: string) => void;
}

export interface ActionRun {
  outputs: Record<string, any>;
  /** `<level> <message>[ <meta>]`; an Error meta is written as its message and stack. */
  logs: string[];
  checkpoints: CheckpointRecord[];
  error?: Error;
  workspacePath: string;
  /** Logs, outputs, checkpoint values and the error (message, stack, JSON): for canary scans. */
  produced: string[];
}

function describeMeta(meta: unknown): string {
  if (meta === undefined || meta === null || meta === '') return '';
  return ` ${
    meta instanceof Error
      ? `${meta.message} ${meta.stack}`
      : JSON.stringify(meta)
  }`;
}

/** A logger that writes `<level> <message>[ <meta>]` lines into `lines`. */
export function collectingLogger(
  lines: string[],
  onLine?: (line: string) => void,
): any {
  const log = (level: string) => (message: string, meta?: unknown) => {
    const line = `${level} ${message}${describeMeta(meta)}`;
    lines.push(line);
    onLine?.(line);
  };
  const logger: any = {
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
    debug: log('debug'),
    child: () => logger,
  };
  return logger;
}

/**
 * Starts an action; `logs` fill while it runs and `done` settles with everything it produced
 * (it never rejects: a thrown error is `error`).
 */
export function startAction(
  action: RunnableAction | ActionFactory,
  input: Record<string, unknown>,
  options: RunActionOptions = {},
): { logs: string[]; done: Promise<ActionRun> } {
  const logs: string[] = [];
  const outputs: Record<string, any> = {};
  const checkpoints: CheckpointRecord[] = [];
  const produced: string[] = [];
  const emit = (text: string) => {
    produced.push(text);
    options.produced?.push(text);
  };
  const ownWorkspace = !options.workspacePath;
  const workspacePath =
    options.workspacePath ??
    fs.mkdtempSync(path.join(os.tmpdir(), 'flux-action-ws-'));
  const store = options.checkpointStore;
  const ctx = createMockActionContext({
    input: input as any,
    logger: collectingLogger(logs, line => {
      emit(line);
      options.onLog?.(line);
    }),
    secrets: options.secrets,
    workspacePath,
  });
  // createMockActionContext keeps output as a mock and has no isDryRun or signal: set them.
  Object.assign(ctx, {
    isDryRun: options.dryRun ?? false,
    signal: options.signal ?? new AbortController().signal,
    output: (name: string, value: unknown) => {
      outputs[name] = value;
      emit(`output ${name}=${JSON.stringify(value)}`);
    },
    checkpoint:
      options.checkpoint ??
      (async ({ key, fn }: { key: string; fn: () => Promise<unknown> }) => {
        const record: CheckpointRecord = { key, replayed: false, done: false };
        checkpoints.push(record);
        if (store?.has(key)) {
          Object.assign(record, { replayed: true, done: true });
          return store.get(key);
        }
        const returned = await fn();
        const value =
          options.jsonCheckpoints && returned !== undefined
            ? JSON.parse(JSON.stringify(returned))
            : returned;
        Object.assign(record, { value, done: true });
        emit(`checkpoint ${key}=${JSON.stringify(value)}`);
        store?.set(key, value);
        if (options.crashAfter === key)
          throw new Error(`simulated crash after checkpoint ${key}`);
        return value;
      }),
  });
  const built =
    typeof action === 'function'
      ? action(options.factoryOptions ?? {})
      : action;
  const done = Promise.resolve()
    .then(() => built.handler(ctx))
    .then(
      () => undefined,
      (e: unknown) => e as Error,
    )
    .then(error => {
      if (ownWorkspace)
        fs.rmSync(workspacePath, { recursive: true, force: true });
      if (error) {
        emit(String(error.message));
        emit(String(error.stack));
        emit(JSON.stringify(error));
      }
      return { outputs, logs, checkpoints, error, workspacePath, produced };
    });
  return { logs, done };
}

/** Runs an action to its end; see {@link startAction}. */
export function runAction(
  action: RunnableAction | ActionFactory,
  input: Record<string, unknown>,
  options: RunActionOptions = {},
): Promise<ActionRun> {
  return startAction(action, input, options).done;
}

/** Runs an action that must succeed: its error, with the log, fails the test. */
export async function runActionOk(
  action: RunnableAction | ActionFactory,
  input: Record<string, unknown>,
  options: RunActionOptions = {},
): Promise<ActionRun> {
  const r = await runAction(action, input, options);
  if (r.error)
    throw new Error(`action failed: ${r.error.message}\n${r.logs.join('\n')}`);
  return r;
}

/** A cluster entry of `kubernetes.clusterLocatorMethods[].clusters`. */
export interface ConfigCluster {
  name: string;
  url: string;
  serviceAccountToken: string;
  caData?: string;
}

/** A cluster entry for a test apiserver (or a proxy in front of it, given as `via`). */
export function configCluster(
  name: string,
  kube: { url: string; adminToken: string; caPem: string },
  via?: { url: string; caPem: string },
): ConfigCluster {
  return {
    name,
    url: via?.url ?? kube.url,
    serviceAccountToken: kube.adminToken,
    caData: via?.caPem ?? kube.caPem,
  };
}

export interface ActionConfigParts {
  /** One `integrations.bitbucketServer` entry. */
  bitbucket?: {
    host: string;
    apiBaseUrl: string;
    token?: string;
    username?: string;
  };
  /** The `fluxBootstrap` block as is. */
  fluxBootstrap?: JsonObject;
  /** `kubernetes.clusterLocatorMethods: [{ type: 'config', clusters }]`. */
  clusters?: ConfigCluster[];
  /** Other top-level blocks (backend, scaffolder, …), merged last. */
  extra?: JsonObject;
}

/** The config data the actions read: integrations, fluxBootstrap and kubernetes. */
export function actionConfigData(parts: ActionConfigParts): JsonObject {
  const data: JsonObject = {};
  if (parts.bitbucket) {
    const { host, apiBaseUrl, token, username } = parts.bitbucket;
    data.integrations = {
      bitbucketServer: [
        {
          host,
          apiBaseUrl,
          ...(token ? { token } : {}),
          ...(username ? { username } : {}),
        },
      ],
    };
  }
  if (parts.fluxBootstrap) data.fluxBootstrap = parts.fluxBootstrap;
  if (parts.clusters)
    data.kubernetes = {
      clusterLocatorMethods: [{ type: 'config', clusters: parts.clusters }],
    };
  return { ...data, ...parts.extra };
}

/** {@link actionConfigData} as a `ConfigReader`. */
export function actionConfig(parts: ActionConfigParts): ConfigReader {
  return new ConfigReader(actionConfigData(parts));
}

/**
 * `run`, `succeed` and `start` with a file's defaults (config, secrets, the `produced` sink…),
 * computed per call so that they see the peers started in `beforeAll`; a call's own options win.
 */
export function actionRunner(defaults: () => RunActionOptions) {
  const merged = (options: RunActionOptions = {}) => ({
    ...defaults(),
    ...options,
  });
  type Run = (
    action: RunnableAction | ActionFactory,
    input: Record<string, unknown>,
    options?: RunActionOptions,
  ) => Promise<ActionRun>;
  const run: Run = (action, input, options) =>
    runAction(action, input, merged(options));
  const succeed: Run = (action, input, options) =>
    runActionOk(action, input, merged(options));
  const start = (
    action: RunnableAction | ActionFactory,
    input: Record<string, unknown>,
    options?: RunActionOptions,
  ) => startAction(action, input, merged(options));
  return { run, succeed, start };
}

/** A run whose `checkpoints` are those whose functions ran to the end, with their values. */
export type CompletedCheckpointsRun = Omit<ActionRun, 'checkpoints'> & {
  checkpoints: { key: string; value: unknown }[];
};

/** Keeps the checkpoints whose functions ran to the end (not replayed, not thrown). */
export function withCompletedCheckpoints(
  r: ActionRun,
): CompletedCheckpointsRun {
  return {
    ...r,
    checkpoints: r.checkpoints
      .filter(c => !c.replayed && c.done)
      .map(({ key, value }) => ({ key, value })),
  };
}
