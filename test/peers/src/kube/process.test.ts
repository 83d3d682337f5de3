import { run as runCommon } from '../common/process';
import { run } from './process';

describe('run()', () => {
  // A child that exits without reading its stdin: writing the input fails with EPIPE. That is
  // not an error of the run (the exit code says how the command went), and must not surface as
  // an uncaught exception.
  const input = 'x'.repeat(8 * 1024 * 1024);

  it('survives a child that exits before reading its input (kube peers)', async () => {
    await expect(run('true', [], { input })).resolves.toEqual({
      stdout: '',
      stderr: '',
    });
    await expect(run('false', [], { input })).rejects.toThrow(
      /false  ?exited with 1/,
    );
  });

  it('survives a child that exits before reading its input (common)', async () => {
    await expect(runCommon('true', [], { input })).resolves.toMatchObject({
      code: 0,
    });
  });
});
