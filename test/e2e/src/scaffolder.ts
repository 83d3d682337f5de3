/**
 * A small client of the Backstage REST APIs the end-to-end tests use, signed in as the guest user
 * exactly like the browser (so the permission policy and `user.*` template values apply).
 */

export interface TaskEvent {
  id: number;
  type: 'log' | 'completion' | 'cancelled' | 'recovered' | string;
  createdAt: string;
  body: {
    message?: string;
    stepId?: string;
    status?: string;
    output?: TaskOutput;
    error?: { name?: string; message?: string };
  };
}

export interface TaskOutput {
  links?: { title?: string; url?: string; entityRef?: string; icon?: string }[];
  text?: { title?: string; content?: string }[];
  [key: string]: unknown;
}

export interface TaskResult {
  id: string;
  status: string;
  events: TaskEvent[];
  /** Last status of each step id, in the order the steps first reported. */
  steps: Record<string, string>;
  output?: TaskOutput;
  /** Every log line, `stepId: message`. */
  log: string[];
}

/** Signs in as the guest user (the guest provider's refresh endpoint, as the app's sign-in page does). */
export async function guestToken(baseUrl: string): Promise<string> {
  const res = await fetch(`${baseUrl}/api/auth/guest/refresh?env=development`, {
    headers: { 'x-requested-with': 'XMLHttpRequest' },
  });
  if (!res.ok)
    throw new Error(`guest sign-in failed: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { backstageIdentity?: { token?: string } };
  const token = body.backstageIdentity?.token;
  if (!token) throw new Error('guest sign-in returned no token');
  return token;
}

export class BackstageApi {
  constructor(readonly baseUrl: string, private readonly token: string) {}

  static async asGuest(baseUrl: string): Promise<BackstageApi> {
    return new BackstageApi(baseUrl, await guestToken(baseUrl));
  }

  async request<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T; text: string }> {
    const res = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: {
        Authorization: `Bearer ${this.token}`,
        ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON
    }
    return { status: res.status, body: parsed as T, text };
  }

  async get<T = unknown>(path: string): Promise<T> {
    const res = await this.request<T>('GET', path);
    if (res.status !== 200)
      throw new Error(`GET ${path}: ${res.status} ${res.text.slice(0, 500)}`);
    return res.body;
  }

  /** `POST /api/scaffolder/v2/tasks`: starts a template; returns the task id. */
  async createTask(
    templateRef: string,
    values: Record<string, unknown>,
    secrets?: Record<string, string>,
  ): Promise<string> {
    const res = await this.request<{ id: string }>(
      'POST',
      '/api/scaffolder/v2/tasks',
      {
        templateRef,
        values,
        secrets,
      },
    );
    if (res.status !== 201) {
      throw new Error(
        `creating a task of ${templateRef} failed: ${res.status} ${res.text}`,
      );
    }
    return res.body.id;
  }

  /** Events of a task after `after` (`GET /v2/tasks/:id/events`). */
  async taskEvents(id: string, after?: number): Promise<TaskEvent[]> {
    const q = after === undefined ? '' : `?after=${after}`;
    return this.get<TaskEvent[]>(
      `/api/scaffolder/v2/tasks/${encodeURIComponent(id)}/events${q}`,
    );
  }

  /**
   * Polls `GET /v2/tasks/:id` and `/v2/tasks/:id/events` until the task ends. No time limit of its
   * own: the caller's test timeout bounds it; `onProgress` sees each new log line.
   */
  async waitForTask(
    id: string,
    onProgress?: (line: string) => void,
  ): Promise<TaskResult> {
    const events: TaskEvent[] = [];
    let after: number | undefined;
    for (;;) {
      const fresh = await this.taskEvents(id, after);
      for (const e of fresh) {
        events.push(e);
        after = e.id;
        if (e.type === 'log' && e.body.message) {
          onProgress?.(`${e.body.stepId ?? 'task'}: ${e.body.message}`);
        }
      }
      const task = await this.get<{ status: string }>(
        `/api/scaffolder/v2/tasks/${encodeURIComponent(id)}`,
      );
      const ended = ['completed', 'failed', 'cancelled'].includes(task.status);
      if (
        ended &&
        events.some(e => e.type === 'completion' || e.type === 'cancelled')
      ) {
        const steps: Record<string, string> = {};
        for (const e of events) {
          if (e.body.stepId && e.body.status)
            steps[e.body.stepId] = e.body.status;
        }
        const completion = events.find(e => e.type === 'completion');
        return {
          id,
          status: task.status,
          events,
          steps,
          output: completion?.body.output,
          log: events
            .filter(e => e.type === 'log' && e.body.message)
            .map(e => `${e.body.stepId ?? 'task'}: ${e.body.message}`),
        };
      }
      await new Promise(r => setTimeout(r, 500));
    }
  }

  /** Starts a template and waits for the task to end. */
  async runTemplate(
    templateRef: string,
    values: Record<string, unknown>,
    secrets?: Record<string, string>,
    onProgress?: (line: string) => void,
  ): Promise<TaskResult> {
    return this.waitForTask(
      await this.createTask(templateRef, values, secrets),
      onProgress,
    );
  }

  /** Polls the catalog until the entity exists. */
  async waitForEntity(ref: { kind: string; namespace?: string; name: string }) {
    const path = `/api/catalog/entities/by-name/${encodeURIComponent(
      ref.kind.toLowerCase(),
    )}/${ref.namespace ?? 'default'}/${encodeURIComponent(ref.name)}`;
    for (;;) {
      const res = await this.request<Record<string, any>>('GET', path);
      if (res.status === 200) return res.body;
      if (res.status !== 404)
        throw new Error(`GET ${path}: ${res.status} ${res.text}`);
      await new Promise(r => setTimeout(r, 500));
    }
  }
}
