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
    await expect(
      action.handler(context({ entityRef: 'resource:x', timeoutSeconds: 0 })),
    ).rejects.toThrow('Invalid input "timeoutSeconds"');
    await action.handler(
      context({ entityRef: 'resource:x' }, { isDryRun: true }),
    );
    expect(getEntityByRef).not.toHaveBeenCalled();
  });
});
