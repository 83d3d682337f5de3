import { mockCredentials, mockServices } from '@backstage/backend-test-utils';
import { createWaitForEntityAction } from './waitForEntity';

function context(
  input: Record<string, unknown>,
  extra: Record<string, unknown> = {},
) {
  const logger = mockServices.logger.mock();
  return {
    input,
    logger,
    output: jest.fn(),
    workspacePath: '/tmp',
    checkpoint: async ({ fn }: { fn: () => unknown }) => fn(),
    createTemporaryDirectory: jest.fn(),
    getInitiatorCredentials: async () =>
      mockCredentials.user('user:default/guest'),
    task: { id: 't' },
    ...extra,
  } as any;
}

describe('fleet:wait-for-entity', () => {
  it('polls the catalog with the initiator credentials until the entity shows up', async () => {
    const getEntityByRef = jest
      .fn()
      .mockResolvedValueOnce(undefined)
      .mockResolvedValueOnce(undefined)
      .mockResolvedValueOnce({
        kind: 'Resource',
        metadata: { name: 'prod-eu' },
      });
    const action = createWaitForEntityAction({
      catalog: { getEntityByRef },
      pollMs: 1,
    });
    const ctx = context({ entityRef: 'Resource:prod-eu' });
    await action.handler(ctx);
    expect(getEntityByRef).toHaveBeenCalledTimes(3);
    expect(getEntityByRef).toHaveBeenCalledWith('resource:default/prod-eu', {
      credentials: mockCredentials.user('user:default/guest'),
    });
    expect(ctx.output).toHaveBeenCalledWith(
      'entityRef',
      'resource:default/prod-eu',
    );
  });

  it('fails after the timeout saying what it waited for', async () => {
    const action = createWaitForEntityAction({
      catalog: { getEntityByRef: jest.fn().mockResolvedValue(undefined) },
      pollMs: 200,
    });
    await expect(
      action.handler(
        context({ entityRef: 'resource:default/prod-eu', timeoutSeconds: 1 }),
      ),
    ).rejects.toThrow(
      'The catalog still does not show resource:default/prod-eu after 1 s',
    );
  });

  it('rejects bad input before asking the catalog, and asks nothing in a dry run', async () => {
    const getEntityByRef = jest.fn();
    const action = createWaitForEntityAction({ catalog: { getEntityByRef } });
    await expect(action.handler(context({ entityRef: '' }))).rejects.toThrow(
      'Invalid input "entityRef"',
    );
    await expect(action.handler(context({}))).rejects.toThrow(
      'Invalid input "entityRef"',
    );
    await expect(
      action.handler(context({ entityRef: 'resource:x', timeoutSeconds: 0 })),
    ).rejects.toThrow('Invalid input "timeoutSeconds"');
    await expect(
      action.handler(context({ entityRef: 'resource:' }, { isDryRun: true })),
    ).rejects.toThrow('Invalid input "entityRef"');
    await expect(
      action.handler(context({ entityRef: 'resource:x', timeoutSeconds: 1.5 })),
    ).rejects.toThrow(
      'Invalid input "timeoutSeconds": must be of type integer',
    );
    const dry = context({ entityRef: 'resource:x' }, { isDryRun: true });
    await action.handler(dry);
    expect(dry.output).toHaveBeenCalledWith('entityRef', 'resource:default/x');
    // timeoutSeconds left out: its documented default, 120
    expect(dry.logger.info).toHaveBeenCalledWith(
      'Dry run: would wait up to 120 s until the catalog shows resource:default/x',
    );
    expect(getEntityByRef).not.toHaveBeenCalled();
  });

  it('does without entityRef in a dry run, where catalog:register is skipped and reports none', async () => {
    const getEntityByRef = jest.fn();
    const action = createWaitForEntityAction({ catalog: { getEntityByRef } });
    const dry = context({ entityRef: undefined }, { isDryRun: true });
    await action.handler(dry);
    expect(dry.output).not.toHaveBeenCalled();
    expect(dry.logger.info).toHaveBeenCalledWith(
      'Dry run: no entityRef (catalog:register is skipped in dry runs, so it reports none); a real run requires it and waits until the catalog shows that entity',
    );
    expect(getEntityByRef).not.toHaveBeenCalled();
  });

  it('stops promptly when the task is cancelled', async () => {
    const controller = new AbortController();
    const getEntityByRef = jest.fn(async () => {
      controller.abort();
      return undefined;
    });
    const action = createWaitForEntityAction({
      catalog: { getEntityByRef },
      pollMs: 60_000,
    });
    await expect(
      action.handler(
        context(
          { entityRef: 'resource:default/prod-eu' },
          { signal: controller.signal },
        ),
      ),
    ).rejects.toThrow('Cancelled while waiting for resource:default/prod-eu');
    expect(getEntityByRef).toHaveBeenCalledTimes(1);
  });
});
