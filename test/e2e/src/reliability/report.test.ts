import fs from 'node:fs';
import path from 'node:path';
import { DOCS_FILE, ReliabilityReport } from './report';

// docs/reliability.md is rendered from the suite's rows plus the hand-written appendix; these
// checks keep that page readable as Markdown and in step with the appendix between suite runs.

/** Lines outside fenced code blocks; throws on a fence that is never closed. */
function proseLines(markdown: string): string[] {
  const prose: string[] = [];
  let fence: string | undefined;
  for (const line of markdown.split('\n')) {
    const m = /^(`{3,}|~{3,})/.exec(line);
    if (fence) {
      if (m && m[1][0] === fence[0] && m[1].length >= fence.length) {
        fence = undefined;
      }
    } else if (m) {
      fence = m[1];
    } else {
      prose.push(line);
    }
  }
  if (fence) throw new Error(`a ${fence} code fence is never closed`);
  return prose;
}

describe('ReliabilityReport', () => {
  const appendix = fs.readFileSync(
    path.join(__dirname, 'docs-appendix.md'),
    'utf8',
  );

  it('renders the rows as tables per area, in numbered order, escaping cells', () => {
    const report = new ReliabilityReport();
    report.add({
      area: '3. Faults survived',
      scenario: 'a | b',
      injected: 'line 1\nline 2',
      outcome: '\u001b[31mred\u001b[0m',
      passed: false,
    });
    report.add({
      area: '1. Secrets never leak',
      scenario: 's',
      injected: 'i',
      outcome: 'o',
      passed: true,
    });
    const text = report.render();
    expect(text).toContain('Last run: 1 of 2 scenarios passed');
    expect(text.indexOf('## 1. Secrets never leak')).toBeLessThan(
      text.indexOf('## 3. Faults survived'),
    );
    expect(text).toContain('| a \\| b | line 1 line 2 | red | **FAIL** |');
    expect(text).toContain('| s | i | o | pass |');
  });

  it('keeps every heading and paragraph of the appendix outside code blocks', () => {
    const prose = proseLines(new ReliabilityReport().render());
    const headings = appendix.split('\n').filter(l => /^#{1,6} /.test(l));
    expect(headings.length).toBeGreaterThan(2);
    for (const h of headings) expect(prose).toContain(h);
    // The paragraph after the policy example is prose, not code.
    expect(
      prose.some(l => l.startsWith('The status routes need a signed-in user')),
    ).toBe(true);
  });

  it('finds an unclosed or mismatched fence (the check can fail)', () => {
    expect(() => proseLines('```ts\nx\n````\n')).not.toThrow();
    expect(() => proseLines('````\nx\n```\n')).toThrow(/never closed/);
    expect(proseLines('a\n```\nb\n```\nc')).toEqual(['a', 'c']);
  });

  it('docs/reliability.md ends with the current appendix and closes every fence', () => {
    const docs = fs.readFileSync(DOCS_FILE, 'utf8');
    expect(() => proseLines(docs)).not.toThrow();
    expect(docs.trimEnd().endsWith(appendix.trimEnd())).toBe(true);
  });
});
