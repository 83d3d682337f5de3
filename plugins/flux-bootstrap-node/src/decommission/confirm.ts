import { InputValidationError } from '../util/errors';

/**
 * The guard every decommission step has: nothing is removed unless `confirm` repeats the cluster
 * name exactly (as GitHub asks for a repository's name before deleting it). Checked before any
 * request, in dry runs too, so a template that forgets the field fails at once.
 * @public
 */
export function requireClusterConfirmation(
  cluster: string,
  confirm: unknown,
  field = 'confirm',
): void {
  if (typeof confirm !== 'string' || confirm.trim() === '') {
    throw new InputValidationError(
      field,
      `is required: type the cluster name "${cluster}" to confirm that it is to be removed`,
    );
  }
  if (confirm.trim() !== cluster) {
    throw new InputValidationError(
      field,
      `"${confirm.trim()}" is not the cluster name "${cluster}"; nothing was removed`,
    );
  }
}
