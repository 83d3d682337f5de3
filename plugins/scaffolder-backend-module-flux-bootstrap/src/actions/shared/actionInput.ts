import { z as zodV3, type z as zod } from 'zod/v3';
import { InputValidationError } from '@flux-bootstrap/plugin-flux-bootstrap-node';

type Z = typeof zod;

const EXPECTED: Record<string, string> = {
  boolean: 'true or false',
  string: 'a string',
  number: 'a number',
  integer: 'a whole number',
  array: 'a list',
  object: 'an object',
};

/** Messages in the actions' words: `Invalid input "<field>": must be true or false`. */
const errorMap: zod.ZodErrorMap = (issue, ctx) => {
  if (issue.code === 'invalid_type') {
    return {
      message:
        issue.received === 'undefined'
          ? 'is required'
          : `must be ${EXPECTED[issue.expected] ?? issue.expected}`,
    };
  }
  if (issue.code === 'invalid_enum_value') {
    return {
      message: `"${String(issue.received).slice(
        0,
        64,
      )}" is not one of ${issue.options.join(', ')}`,
    };
  }
  return { message: issue.message ?? ctx.defaultError };
};

/** An action's input schema and the parser its handler uses. */
export interface ActionInput<S extends zod.ZodTypeAny> {
  /** `schema.input` of `createTemplateAction`: built with the injected `z`, once. */
  schema: (z: Z) => S;
  /**
   * Parses `ctx.input` with that same schema: defaults applied, values normalised. The first
   * problem is an `InputError` naming the field (`Invalid input "<field>": …`); nothing has been
   * sent at that point.
   */
  parse(input: unknown): zod.output<S>;
}

/**
 * One zod object per action, both what the scaffolder documents and validates and what the
 * handler parses with (the scaffolder does not apply zod defaults or transforms at run time).
 */
export function actionInput<S extends zod.ZodTypeAny>(
  build: (z: Z) => S,
): ActionInput<S> {
  let built: S | undefined;
  const schema = (z: Z) => (built ??= build(z));
  return {
    schema,
    parse(input) {
      const result = schema(zodV3).safeParse(input ?? {}, { errorMap });
      if (result.success) return result.data;
      const [issue] = result.error.issues;
      throw new InputValidationError(
        String(issue.path[0] ?? 'input'),
        issue.message,
      );
    },
  };
}
