import {
  ConflictError,
  CustomErrorBase,
  InputError,
  isErrorWithName,
  serializeError,
} from '@backstage/errors';
import { BitbucketError } from '../bitbucket/errors';
import { GitServerUnavailableError } from '../git/session';
import { FluxInstallError } from '../install/errors';
import { KubeApiError } from '../kube/errors';
import { Redactor } from './redact';
import {
  errorNameForKind,
  InputValidationError,
  OperationAbortedError,
} from './errors';

describe("the engine's errors", () => {
  it.each([
    [new InputValidationError('repoUrl', 'is required'), 'InputError'],
    [new BitbucketError('x', { kind: 'unauthorized' }), 'AuthenticationError'],
    [new BitbucketError('x', { kind: 'forbidden' }), 'NotAllowedError'],
    [new BitbucketError('x', { kind: 'not-found' }), 'NotFoundError'],
    [new BitbucketError('x', { kind: 'conflict' }), 'ConflictError'],
    [new BitbucketError('x', { kind: 'bad-request' }), 'InputError'],
    [new BitbucketError('x', { kind: 'timeout' }), 'ServiceUnavailableError'],
    [new KubeApiError('x', { kind: 'invalid' }), 'InputError'],
    [new KubeApiError('x', { kind: 'unreachable' }), 'ServiceUnavailableError'],
    [new FluxInstallError('missing-permissions', 'x'), 'NotAllowedError'],
    [new FluxInstallError('path-conflict', 'x'), 'ConflictError'],
    [new FluxInstallError('timeout', 'x'), 'ServiceUnavailableError'],
  ])('%s carries the Backstage name %s', (error, name) => {
    expect(error).toBeInstanceOf(CustomErrorBase);
    expect(error.name).toBe(name);
    expect(isErrorWithName(error, name)).toBe(true);
    expect(serializeError(error).name).toBe(name);
  });

  it('keeps its detail as fields, also through redaction', () => {
    const error = new InputValidationError(
      'token',
      'must not be "s3cr3t-value"',
    );
    expect(error.message).toBe(
      'Invalid input "token": must not be "s3cr3t-value"',
    );
    const safe = new Redactor(['s3cr3t-value']).redactError(error);
    expect(safe).toMatchObject({ name: 'InputError', field: 'token' });
    expect(safe).toBeInstanceOf(InputError);
    expect(safe).toBeInstanceOf(InputValidationError);
    expect(safe.message).not.toContain('s3cr3t-value');
    const bb = new BitbucketError('gone', { kind: 'not-found', status: 404 });
    expect(new Redactor().redactError(bb)).toBeInstanceOf(BitbucketError);
    expect(new Redactor().redactError(bb)).toMatchObject({
      name: 'NotFoundError',
      kind: 'not-found',
      status: 404,
    });
  });

  it('keeps a cause without appending it to the message', () => {
    const inner = new Error('socket hang up at https://user:pw@host');
    const error = new GitServerUnavailableError('git kept failing', inner);
    expect(error.message).toBe('git kept failing');
    expect(error.cause).toBe(inner);
    expect(error.name).toBe('ServiceUnavailableError');
    expect(new OperationAbortedError().name).toBe('OperationAbortedError');
    expect(errorNameForKind('something new')).toBe('ServiceUnavailableError');
    expect(
      isErrorWithName(new ConflictError('x'), errorNameForKind('conflict')),
    ).toBe(true);
  });
});
