import { fluxBootstrapPlugin } from './plugin';

describe('flux-bootstrap plugin', () => {
  it('has the flux-bootstrap id', () => {
    expect(fluxBootstrapPlugin.getId()).toBe('flux-bootstrap');
  });
});
