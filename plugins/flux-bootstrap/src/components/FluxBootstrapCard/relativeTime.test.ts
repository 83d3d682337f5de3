import { relativeTime } from './relativeTime';

describe('relativeTime', () => {
  const now = new Date('2026-05-01T12:00:00Z');
  it('words the distance to now', () => {
    expect(relativeTime('2026-05-01T11:57:00Z', now)).toBe('3 minutes ago');
    expect(relativeTime('2026-04-29T12:00:00Z', now)).toBe('2 days ago');
    expect(relativeTime('2026-05-01T12:00:00Z', now)).toBe('now');
  });
  it('returns nothing for missing or invalid times', () => {
    expect(relativeTime(undefined, now)).toBeUndefined();
    expect(relativeTime('yesterday', now)).toBeUndefined();
  });
});
