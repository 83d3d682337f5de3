import { startTestBackend } from '@backstage/backend-test-utils';
import request from 'supertest';
import { fluxBootstrapPlugin } from './plugin';

describe('fluxBootstrapPlugin', () => {
  it('serves its health route without credentials', async () => {
    const { server } = await startTestBackend({ features: [fluxBootstrapPlugin] });
    const res = await request(server).get('/api/flux-bootstrap/health');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok' });
  });
});
