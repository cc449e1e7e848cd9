/** Numbered placeholders (`$1`, `$2` ...) for SQL assembled from optional parts. */
export class SqlParams {
  readonly values: unknown[] = [];

  /** Adds a value; returns its placeholder. */
  add(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}
