/*
 * The action reference (docs/reference/actions.md) and every action snippet in docs/ against
 * the schemas of the actions this module registers. Regenerate the reference with
 * `node docs/scripts/generate.js`.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { mockServices, startTestBackend } from '@backstage/backend-test-utils';
import { ConfigReader } from '@backstage/config';
import { catalogServiceMock } from '@backstage/plugin-catalog-node/testUtils';
import { scaffolderActionsExtensionPoint } from '@backstage/plugin-scaffolder-node';
import { scaffolderTemplatingExtensionPoint } from '@backstage/plugin-scaffolder-node/alpha';
import { createMockActionContext } from '@backstage/plugin-scaffolder-node-test-utils';
import { buildFluxBundle } from '@flux-bootstrap/test-peers';
// The generator lives with the docs (docs/scripts), outside any package; `node
// docs/scripts/generate.js` runs the same code.
// eslint-disable-next-line @backstage/no-relative-monorepo-imports
import {
  ACTIONS_PAGE,
  ActionLike,
  actionBlockId,
  badOutputReferences,
  checkStepInput,
  codeBlocks,
  docsPages,
  GENERATE_COMMAND,
  readGeneratedBlocks,
  REPO_ROOT,
  renderActionsPage,
  StepSnippet,
  stepsOf,
} from '../../../docs/scripts/reference';
import { scaffolderModuleFluxBootstrap } from './module';
import { createBitbucketCreateRepoAction } from './actions/createRepo';
import { createFluxGenerateKeyAction } from './actions/generateKey';
import { createFluxPushManifestsAction } from './actions/pushManifests';
import { createFluxInstallAction } from './actions/install';
import { createWaitForEntityAction } from './actions/waitForEntity';

/** The actions exactly as the scaffolder receives them from this module. */
async function registeredActions(): Promise<ActionLike[]> {
  const actions: ActionLike[] = [];
  const backend = await startTestBackend({
    extensionPoints: [
      [
        scaffolderActionsExtensionPoint,
        { addActions: (...added: ActionLike[]) => actions.push(...added) },
      ],
      [
        scaffolderTemplatingExtensionPoint,
        { addTemplateFilters: () => {}, addTemplateGlobals: () => {} },
      ],
    ],
    features: [
      scaffolderModuleFluxBootstrap,
      catalogServiceMock.factory(),
      mockServices.rootConfig.factory({ data: {} }),
    ],
  });
  await backend.stop();
  return actions;
}

/** The first lines where two texts differ, for a readable failure. */
function firstDifference(expected: string, actual: string): string {
  const a = expected.split('\n');
  const b = actual.split('\n');
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] !== b[i]) {
      return `line ${i + 1}:\n  generated: ${a[i] ?? '(end)'}\n  committed: ${
        b[i] ?? '(end)'
      }`;
    }
  }
  return 'no difference';
}

const OUR_PREFIXES = /^(bitbucket|flux|fleet):/;

describe('action reference (docs/reference/actions.md)', () => {
  let actions: ActionLike[];
  let page: string;

  beforeAll(async () => {
    actions = await registeredActions();
    page = fs.readFileSync(ACTIONS_PAGE, 'utf8');
  });

  it('has one generated section per registered action, in registration order', () => {
    expect(actions.map(a => a.id)).toHaveLength(10);
    expect([...readGeneratedBlocks(page).keys()]).toEqual(
      actions.map(a => actionBlockId(a.id)),
    );
  });

  it('reads the JSON schemas the scaffolder serves for the actions', () => {
    // createTemplateAction turns the zod callbacks into JSON schema (what
    // GET /api/scaffolder/v2/actions returns); the generator documents exactly that.
    for (const action of actions) {
      const input = action.schema?.input as { type?: string; properties?: {} };
      const output = action.schema?.output as {
        type?: string;
        properties?: {};
      };
      expect(input?.type).toBe('object');
      expect(Object.keys(input.properties ?? {}).length).toBeGreaterThan(0);
      expect(output?.type).toBe('object');
      expect(Object.keys(output.properties ?? {}).length).toBeGreaterThan(0);
    }
  });

  it('is exactly what the generator produces from the schemas and examples', () => {
    const generated = renderActionsPage(page, actions);
    const problem =
      generated === page
        ? ''
        : `${path.relative(
            REPO_ROOT,
            ACTIONS_PAGE,
          )} is out of date with the action schemas: run ${GENERATE_COMMAND}\n${firstDifference(
            generated,
            page,
          )}`;
    expect(problem).toBe('');
  });

  it('goes stale when a schema changes (the check can fail)', () => {
    const [first, ...rest] = actions;
    const input = first.schema!.input as {
      properties: Record<string, { description?: string }>;
    };
    const [name, prop] = Object.entries(input.properties)[0];
    const changed: ActionLike = {
      ...first,
      schema: {
        ...first.schema,
        input: {
          ...input,
          properties: {
            ...input.properties,
            [name]: { ...prop, description: `${prop.description} (changed)` },
          },
        },
      },
    };
    expect(renderActionsPage(page, [changed, ...rest])).not.toBe(page);
    const extra: ActionLike = { ...first, id: 'flux:not-documented' };
    expect(() => renderActionsPage(page, [...rest, extra])).toThrow(
      /nobody renders/,
    );
  });

  it('has examples that fit their own action schema', () => {
    const problems: string[] = [];
    for (const action of actions) {
      expect(action.examples?.length).toBeGreaterThan(0);
      for (const [i, example] of (action.examples ?? []).entries()) {
        const where = `${action.id} example ${i + 1}`;
        const steps = stepsOf(where, example.example);
        expect(steps.some(s => s.action === action.id)).toBe(true);
        for (const step of steps) {
          const target = actions.find(a => a.id === step.action);
          if (target) problems.push(...checkStepInput(step, target));
        }
        problems.push(...badOutputReferences(where, example.example, actions));
      }
    }
    expect(problems).toEqual([]);
  });
});

describe('action snippets in docs/', () => {
  let actions: ActionLike[];

  beforeAll(async () => {
    actions = await registeredActions();
  });

  it('use only inputs the actions have, with values of the right type', () => {
    const problems: string[] = [];
    let checked = 0;
    for (const page of docsPages()) {
      const text = fs.readFileSync(path.join(REPO_ROOT, 'docs', page), 'utf8');
      for (const block of codeBlocks(`docs/${page}`, text)) {
        if (block.lang !== 'yaml' || !/\baction:\s/.test(block.text)) continue;
        const where = `${block.file}:${block.line}`;
        let steps;
        try {
          steps = stepsOf(where, block.text);
        } catch (e) {
          problems.push((e as Error).message);
          continue;
        }
        for (const step of steps) {
          if (!OUR_PREFIXES.test(step.action)) continue;
          const action = actions.find(a => a.id === step.action);
          if (!action) {
            problems.push(`${where}: unknown action ${step.action}`);
            continue;
          }
          problems.push(...checkStepInput(step, action));
          checked++;
        }
        problems.push(...badOutputReferences(where, block.text, actions));
      }
    }
    expect(problems).toEqual([]);
    // The how-tos hold snippets of every action.
    expect(checked).toBeGreaterThanOrEqual(actions.length);
  });

  it('rejects a snippet with an unknown input, a wrong type or a wrong output name', () => {
    const install = actions.find(a => a.id === 'flux:install')!;
    const [step] = stepsOf(
      'test',
      'steps:\n  - action: flux:install\n    input:\n      cluster: prod\n      syncUrl: ssh://git@h/p/r.git\n      path: clusters/prod\n      wait: "yes"\n      privateKey: x\n',
    );
    expect(checkStepInput(step, install)).toEqual([
      expect.stringContaining('input.wait: expected boolean, got string'),
      expect.stringContaining('input.privateKey is not an input'),
    ]);
    expect(
      badOutputReferences(
        'test',
        'steps:\n  - id: key\n    action: flux:generate-key\n    input: {}\n  - action: flux:install\n    input:\n      syncUrl: ${{ steps.key.output.syncUrl }}\n',
        actions,
      ),
    ).toEqual([expect.stringContaining('has no output "syncUrl"')]);
  });
});

/** Every step of our actions in the YAML snippets of docs/. */
function docSteps(): StepSnippet[] {
  const steps: StepSnippet[] = [];
  for (const page of docsPages()) {
    const text = fs.readFileSync(path.join(REPO_ROOT, 'docs', page), 'utf8');
    for (const block of codeBlocks(`docs/${page}`, text)) {
      if (block.lang !== 'yaml' || !/\baction:\s/.test(block.text)) continue;
      steps.push(
        ...stepsOf(`${block.file}:${block.line}`, block.text).filter(s =>
          OUR_PREFIXES.test(s.action),
        ),
      );
    }
  }
  return steps;
}

const SECRET_REF = /^\$\{\{\s*secrets\.([A-Za-z_]\w*)\s*\}\}$/;

describe('action snippets in docs/, run as a dry run', () => {
  const INTEGRATION_TOKEN = 'integration-canary-3c9d1f07a2';
  const KEY_PASSPHRASE = 'passphrase-canary-6d2e90b1';
  let tmp: string;
  /** A user's own SSH keys (ssh-keygen), for snippets that name task secrets with url. */
  const userKeys: { plain: string; encrypted: string } = {
    plain: '',
    encrypted: '',
  };

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'docs-dry-run-'));
    for (const [name, passphrase] of [
      ['plain', ''],
      ['encrypted', KEY_PASSPHRASE],
    ] as const) {
      const file = path.join(tmp, `id-${name}`);
      execFileSync('ssh-keygen', [
        '-q',
        '-t',
        'ed25519',
        '-N',
        passphrase,
        '-C',
        '',
        '-f',
        file,
      ]);
      userKeys[name] = fs.readFileSync(file, 'utf8');
    }
    const bundle = await buildFluxBundle({ version: 'v2.9.4' });
    fs.mkdirSync(path.join(tmp, 'bundles/v2.9.4'), { recursive: true });
    fs.writeFileSync(
      path.join(tmp, 'bundles/v2.9.4/manifests.tar.gz'),
      bundle.tarball,
    );
  });

  afterAll(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('passes every step with literal inputs through its action, and no secret reaches a log line or an output', async () => {
    // The decommission actions read in a dry run (the cluster, Bitbucket, the catalog) to list
    // exactly what would be removed, so they cannot run against nothing; their snippets are
    // checked against the schemas above, and their dry runs against real peers in their tests.
    const READS_IN_DRY_RUN = new Set([
      'flux:uninstall',
      'bitbucket:delete-access-keys',
      'flux:remove-cluster-path',
      'fleet:unregister-cluster',
      // No dry run at all: the scaffolder skips it in one.
      'flux:bootstrap-fleet',
    ]);
    const steps = docSteps().filter(s => !READS_IN_DRY_RUN.has(s.action));
    // Steps whose inputs are literals or task secrets; the others depend on the template run.
    const literal = steps.filter(step =>
      Object.values(step.input).every(
        v => typeof v !== 'string' || !v.includes('${{') || SECRET_REF.test(v),
      ),
    );
    const clusters = [
      ...new Set(
        literal
          .map(s => s.input.cluster)
          .filter((c): c is string => typeof c === 'string'),
      ),
    ];
    const config = new ConfigReader({
      integrations: {
        bitbucketServer: [
          { host: 'bitbucket.example.com', token: INTEGRATION_TOKEN },
        ],
      },
      kubernetes: {
        clusterLocatorMethods: [
          {
            type: 'config',
            // Never contacted: a dry run sends nothing.
            clusters: clusters.map(name => ({
              name,
              url: 'https://127.0.0.1:9',
              serviceAccountToken: `cluster-canary-${name}`,
            })),
          },
        ],
      },
      fluxBootstrap: {
        manifests: {
          localPath: path.join(tmp, 'bundles'),
          defaultVersion: 'v2.9.4',
        },
      },
    });
    const factories: Record<string, (o: { config: ConfigReader }) => any> = {
      'bitbucket:create-repo': createBitbucketCreateRepoAction,
      'flux:generate-key': createFluxGenerateKeyAction,
      'flux:push-manifests': createFluxPushManifestsAction,
      'flux:install': createFluxInstallAction,
      // Never asks the catalog in a dry run.
      'fleet:wait-for-entity': () =>
        createWaitForEntityAction({ catalog: catalogServiceMock() }),
    };

    const problems: string[] = [];
    const ran = new Set<string>();
    for (const [i, step] of literal.entries()) {
      const secrets: Record<string, string> = {};
      const input: Record<string, unknown> = {};
      for (const [key, value] of Object.entries(step.input)) {
        const m = typeof value === 'string' ? SECRET_REF.exec(value) : null;
        if (m) {
          secrets[m[1]] = `secret-canary-${m[1]}-${i}-7e1b`;
          input[key] = secrets[m[1]];
        } else {
          input[key] = value;
        }
      }
      // With url, the actions read the user's own key (and its passphrase) from task secrets
      // named by sshPrivateKeySecret / sshPassphraseSecret: plant real ones under those names.
      if (typeof input.url === 'string') {
        const keyName =
          typeof input.sshPrivateKeySecret === 'string'
            ? input.sshPrivateKeySecret
            : 'sshPrivateKey';
        const passName = input.sshPassphraseSecret;
        secrets[keyName] =
          typeof passName === 'string' ? userKeys.encrypted : userKeys.plain;
        if (typeof passName === 'string') secrets[passName] = KEY_PASSPHRASE;
      }
      const lines: string[] = [];
      const log = (message: string, meta?: unknown) =>
        lines.push(`${message} ${meta ? String(meta) : ''}`);
      const logger: any = { info: log, warn: log, error: log, debug: log };
      logger.child = () => logger;
      const outputs: Record<string, unknown> = {};
      const workspacePath = fs.mkdtempSync(path.join(tmp, 'ws-'));
      const ctx = createMockActionContext({
        input: input as any,
        logger,
        secrets,
        workspacePath,
      });
      Object.assign(ctx, {
        isDryRun: true,
        output: (name: string, value: unknown) => {
          outputs[name] = value;
        },
      });
      const action = factories[step.action]({ config });
      try {
        await action.handler(ctx);
        ran.add(step.action);
      } catch (e) {
        problems.push(
          `${step.where} (${step.action}): ${(e as Error).message}`,
        );
        continue;
      }
      const seen = JSON.stringify({ lines, outputs });
      const keyLines = Object.values(secrets).flatMap(v =>
        v.includes('PRIVATE KEY')
          ? v.split('\n').filter(l => l.length > 40 && !l.startsWith('-----'))
          : [],
      );
      for (const secret of [
        ...Object.values(secrets).filter(v => !v.includes('PRIVATE KEY')),
        ...keyLines,
        INTEGRATION_TOKEN,
      ]) {
        if (seen.includes(secret)) {
          problems.push(
            `${step.where} (${step.action}): a secret was logged or output`,
          );
        }
      }
    }
    expect(problems).toEqual([]);
    // The how-tos hold literal snippets of these actions; a page rewritten to templated values
    // only would silently drop this check.
    expect([...ran].sort()).toEqual(
      expect.arrayContaining([
        'bitbucket:create-repo',
        'flux:generate-key',
        'flux:push-manifests',
      ]),
    );
  });
});
