import { mockServices, startTestBackend } from '@backstage/backend-test-utils';
import catalogBackend from '@backstage/plugin-catalog-backend';
import request from 'supertest';
import { clusterEntityUrl } from './entities';
import { clusterEntityUrlReaderFactory, fleetEntitiesPlugin } from './module';

jest.setTimeout(60_000);

describe('cluster entity locations in a real catalog backend', () => {
  it('registers the URL as a location and the catalog reads the Resource in-process', async () => {
    const baseUrl = 'http://127.0.0.1:7999';
    const { server } = await startTestBackend({
      features: [
        catalogBackend,
        clusterEntityUrlReaderFactory,
        fleetEntitiesPlugin,
        mockServices.rootConfig.factory({
          data: {
            backend: { baseUrl },
            catalog: {
              rules: [{ allow: ['Resource', 'Location'] }],
              processingInterval: { seconds: 1 },
            },
          },
        }),
      ],
    });
    const target = clusterEntityUrl(baseUrl, {
      name: 'prod-eu',
      owner: 'group:default/platform-team',
      repository:
        'https://bitbucket.example.com/projects/PLAT/repos/fleet-infra/browse',
      branch: 'main',
      path: 'clusters/prod-eu',
    });

    // What catalog:register does: add the location, then a dry run to learn the entity ref.
    const added = await request(server)
      .post('/api/catalog/locations')
      .send({ type: 'url', target });
    expect(added.status).toBe(201);
    const again = await request(server)
      .post('/api/catalog/locations')
      .send({ type: 'url', target });
    expect(again.status).toBe(409); // catalog:register with optional: true tolerates this on re-runs
    const dry = await request(server)
      .post('/api/catalog/locations?dryRun=true')
      .send({ type: 'url', target });
    expect(dry.status).toBe(201);
    expect(dry.body.exists).toBe(true);
    expect(
      dry.body.entities.map((e: any) => `${e.kind}:${e.metadata.name}`),
    ).toContain('Resource:prod-eu');

    let entity: any;
    for (let i = 0; i < 200 && !entity; i++) {
      const res = await request(server).get(
        '/api/catalog/entities/by-name/resource/default/prod-eu',
      );
      if (res.status === 200) entity = res.body;
      else await new Promise(r => setTimeout(r, 100));
    }
    expect(entity?.spec).toEqual({
      type: 'kubernetes-cluster',
      owner: 'group:default/platform-team',
    });
    expect(
      entity.metadata.annotations['backstage.io/managed-by-location'],
    ).toBe(`url:${target}`);
    expect(entity.relations).toEqual(
      expect.arrayContaining([
        { type: 'ownedBy', targetRef: 'group:default/platform-team' },
      ]),
    );

    // The same URL served over HTTP (authenticated) shows what the catalog read.
    const shown = await request(server).get(
      new URL(target).pathname + new URL(target).search,
    );
    expect(shown.status).toBe(200);
    expect(shown.text).toContain('type: kubernetes-cluster');
  });

  it('fails the registration with the reason when the URL holds an invalid entity', async () => {
    const baseUrl = 'http://127.0.0.1:7999';
    const { server } = await startTestBackend({
      features: [
        catalogBackend,
        clusterEntityUrlReaderFactory,
        mockServices.rootConfig.factory({ data: { backend: { baseUrl } } }),
      ],
    });
    const target = clusterEntityUrl(baseUrl, {
      name: 'prod-eu',
      owner: 'group:default/platform-team',
      repository: 'file:///etc/passwd',
    });
    const dry = await request(server)
      .post('/api/catalog/locations?dryRun=true')
      .send({ type: 'url', target });
    expect(dry.status).toBe(400);
    expect(JSON.stringify(dry.body)).toContain('repository');
  });
});
