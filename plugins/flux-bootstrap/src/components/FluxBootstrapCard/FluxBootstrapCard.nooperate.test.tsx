import { waitFor, within } from '@testing-library/react';
import { apiWith, renderCard, row } from './__testUtils__/renderCard';

/*
 * Operating Flux from the card: the buttons appear only when the permission policy allows
 * flux.bootstrap.cluster.operate, call the client for the operate routes, and show the answer or
 * the refusal. The API and the permission API are mocks; the card, its buttons and the dialog
 * are the real components. This file: a user without the permission (usePermission caches its
 * answer per test file).
 */

describe('operating Flux from the card, without the permission', () => {
  it('offers no operate button without flux.bootstrap.cluster.operate', async () => {
    const api = apiWith('ready', async () => {
      throw new Error('must not be called');
    });
    const { asked } = await renderCard(api, false);
    const r = within(await row());
    await waitFor(() =>
      expect(asked).toContain('flux.bootstrap.cluster.operate'),
    );
    expect(r.queryByRole('group', { name: /^Operate Flux/ })).toBeNull();
    expect(r.queryByRole('button', { name: /Reconcile now/ })).toBeNull();
    expect(r.queryByRole('button', { name: /Suspend/ })).toBeNull();
    expect(api.operateCluster).not.toHaveBeenCalled();
  });
});
