import fs from 'node:fs';
import path from 'node:path';
import type { FluxBundleFiles } from '../components';
import { resolveFluxManifestOptions } from '../options';

/** The project's stand-in for Flux v2.9.4's release bundle (see bundle/README.md). */
export function readFixtureBundle(): FluxBundleFiles {
  // eslint-disable-next-line no-restricted-syntax
  const dir = path.join(__dirname, 'bundle');
  const files: FluxBundleFiles = {};
  for (const name of fs.readdirSync(dir).filter(n => n.endsWith('.yaml')).sort()) {
    files[name] = fs.readFileSync(path.join(dir, name), 'utf8');
  }
  return files;
}

/** Compares with a golden file; `UPDATE_GOLDEN=1` rewrites it (review the diff by hand). */
export function expectGolden(name: string, actual: string): void {
  // eslint-disable-next-line no-restricted-syntax
  const file = path.join(__dirname, 'golden', name);
  if (process.env.UPDATE_GOLDEN === '1') {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, actual);
  }
  const expected = fs.readFileSync(file, 'utf8');
  expect(actual).toBe(expected);
}

/**
 * The options of the golden files: `default/` (flux bootstrap's defaults) and `custom/` (every
 * option changed). One definition for every test that compares with them.
 */
export function goldenOptions() {
  const defaults = resolveFluxManifestOptions(
    {
      path: 'clusters/my-cluster',
      syncUrl: 'ssh://git@bitbucket.example.com:7999/FLUX/fleet.git',
    },
    { fluxVersion: 'v2.9.4' },
  );

  const custom = resolveFluxManifestOptions(
    {
      fluxVersion: 'v2.9.4',
      path: 'clusters/prod',
      branch: 'release/v1',
      namespace: 'flux-prod',
      components: [
        'source-controller',
        'kustomize-controller',
        'helm-controller',
      ],
      componentsExtra: ['source-watcher', 'image-reflector-controller'],
      registry: 'registry.example.com:5000/mirror',
      imagePullSecret: 'regcred',
      networkPolicy: false,
      watchAllNamespaces: false,
      logLevel: 'debug',
      clusterDomain: 'k8s.internal',
      tolerationKeys: ['node-role.kubernetes.io/infra', 'dedicated'],
      secretName: 'fleet-ssh',
      syncUrl: 'https://bitbucket.example.com/scm/FLUX/fleet.git',
      interval: '5m0s',
      recurseSubmodules: true,
    },
    { fluxVersion: 'v2.9.4' },
  );
  return { defaults, custom };
}
