import { MAX_CONFIG_BYTES, parseYaml } from '../../shared/config/files';

describe('parseYaml', () => {
  it('parses YAML and JSON alike', () => {
    expect(parseYaml('a: 1\nb: [x, y]\n')).toEqual({ a: 1, b: ['x', 'y'] });
    expect(parseYaml('{"a": 1, "b": ["x", "y"]}')).toEqual({ a: 1, b: ['x', 'y'] });
  });

  it('refuses a duplicated key instead of keeping the last one', () => {
    expect(() => parseYaml('appId: my-app\nappId: other-app\n')).toThrow(/Map keys must be unique/);
    expect(() => parseYaml('{"appId": "my-app", "appId": "other-app"}')).toThrow(/Map keys must be unique/);
  });

  it('parses text of exactly 64 KiB and refuses one byte more, before parsing, naming the size', () => {
    const atLimit = `a: ${'x'.repeat(MAX_CONFIG_BYTES - 4)}\n`;
    const overLimit = `# ${'é'.repeat(MAX_CONFIG_BYTES / 2)}\na: 1\n`;

    expect(Buffer.byteLength(atLimit)).toBe(MAX_CONFIG_BYTES);
    expect(parseYaml(atLimit)).toEqual({ a: 'x'.repeat(MAX_CONFIG_BYTES - 4) });
    expect(() => parseYaml(overLimit)).toThrow(
      `is ${Buffer.byteLength(overLimit)} bytes, at most ${MAX_CONFIG_BYTES} allowed`,
    );
  });

  it('refuses an alias bomb', () => {
    const bomb = [
      'a: &a [x, x, x, x, x, x, x, x, x]',
      'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]',
      'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]',
      'd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]',
    ].join('\n');

    expect(() => parseYaml(bomb)).toThrow(/alias/i);
  });
});
