/** Writes every defined value as an action output (an absent optional output stays absent). */
export function writeOutputs<O>(
  ctx: { output(name: keyof O, value: O[keyof O]): void },
  values: { [K in keyof O]?: O[K] },
): void {
  for (const [name, value] of Object.entries(values)) {
    if (value !== undefined) ctx.output(name as keyof O, value as O[keyof O]);
  }
}
