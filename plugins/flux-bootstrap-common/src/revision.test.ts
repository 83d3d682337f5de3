import { parseFluxRevision, shortSha } from './revision';

const sha = '0123456789abcdef0123456789abcdef01234567';

describe('parseFluxRevision', () => {
  it('reads the Flux v1 API form <ref>@sha1:<sha>', () => {
    expect(parseFluxRevision(`main@sha1:${sha}`)).toEqual({
      ref: 'main',
      algorithm: 'sha1',
      sha,
    });
    expect(parseFluxRevision(`refs/heads/release/1.x@sha1:${sha}`).ref).toBe(
      'refs/heads/release/1.x',
    );
  });

  it('reads a digest without ref, the legacy <branch>/<sha> form and a bare SHA', () => {
    expect(parseFluxRevision(`sha1:${sha.toUpperCase()}`)).toEqual({
      algorithm: 'sha1',
      sha,
    });
    expect(parseFluxRevision(`feature/x/${sha}`)).toEqual({
      ref: 'feature/x',
      algorithm: 'sha1',
      sha,
    });
    expect(parseFluxRevision(sha)).toEqual({ algorithm: 'sha1', sha });
  });

  it('keeps anything else as a ref and returns nothing for empty input', () => {
    expect(parseFluxRevision('v1.2.3')).toEqual({ ref: 'v1.2.3' });
    expect(parseFluxRevision('')).toEqual({});
    expect(parseFluxRevision(undefined)).toEqual({});
    expect(shortSha(`main@sha1:${sha}`)).toBe('01234567');
    expect(shortSha('main')).toBeUndefined();
  });
});
