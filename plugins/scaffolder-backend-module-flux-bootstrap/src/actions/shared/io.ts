import { InputValidationError } from '@flux-bootstrap/plugin-flux-bootstrap-node';
import { z as zod } from 'zod/v3';

/** `groups[0].permission` for the path `['groups', 0, 'permission']`. */
function fieldOf(path: (string | number)[]): string {
  const parts = path.map((p, i) => {
    if (typeof p === 'number') return `[${p}]`;
    return i ? `.${p}` : p;
  });
  return parts.join('') || 'input';
}

function messageOf(issue: zod.ZodIssue): string {
  if (issue.code === 'invalid_type') {
    if (issue.received === 'undefined') return 'is required';
    return issue.expected === 'boolean'
      ? `must be of type boolean (true or false; got ${issue.received})`
      : `must be of type ${issue.expected} (got ${issue.received})`;
  }
  if (issue.code === 'invalid_enum_value')
    return `must be one of ${issue.options.join(', ')}`;
  return issue.message;
}

/** A template leaves unfilled fields as `''` or `null`: they count as not set. */
function withoutUnset(input: unknown): unknown {
  if (!input || typeof input !== 'object' || Array.isArray(input)) return input;
  return Object.fromEntries(
    Object.entries(input).filter(([, v]) => v !== '' && v !== null),
  );
}

/**
 * An action's one input schema, built with the scaffolder's zod. `schema` goes to
 * `createTemplateAction` (the form, the action list and the generated reference); `parse` is
 * the handler's first statement: inputs a template left unset (`''`, `null`) are dropped,
 * `.default()`s applied, refinements and cross-field rules checked, and the first problem
 * thrown as an `InputError` naming the field — before any request.
 */
export function actionInput<T extends zod.ZodTypeAny>(
  build: (z: typeof zod) => T,
) {
  let schema: zod.ZodEffects<T, zod.output<T>, unknown> | undefined;
  const built = (z: typeof zod) =>
    (schema ??= z.preprocess(withoutUnset, build(z)));
  return {
    schema: built,
    parse(input: unknown): zod.output<T> {
      const result = built(zod).safeParse(input);
      if (result.success) return result.data;
      const [issue] = result.error.issues;
      throw new InputValidationError(fieldOf(issue.path), messageOf(issue));
    },
  };
}

/** The text of an engine rule's `InputValidationError`, without its `Invalid input "x": `. */
function ruleMessage(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/^Invalid input "[^"]*": /, '');
}

/**
 * A string checked (and normalised) by an engine rule that throws an `InputValidationError`;
 * the rule's message becomes the issue, at the field being parsed.
 */
export function ruled<T>(z: typeof zod, rule: (value: string) => T) {
  return z.string().transform((value, ctx): T => {
    try {
      return rule(value);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: ruleMessage(error) });
      return z.NEVER;
    }
  });
}

/** Writes a use case's outputs (the ones it knows: undefined ones are left out). */
export function writeOutputs<O extends object>(
  ctx: { output(name: never, value: never): void },
  outputs: O,
): void {
  const output = ctx.output as (name: string, value: unknown) => void;
  for (const [name, value] of Object.entries(outputs))
    if (value !== undefined) output(name, value);
}
