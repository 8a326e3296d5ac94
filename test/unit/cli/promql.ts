// A PromQL parser for tests: enough of the Prometheus grammar (3.x) to reject malformed queries and to
// name every metric a query selects. Grafana's template variables are substituted first
// ($__rate_interval and friends become a duration; other variables may only appear inside label strings).

const AGGREGATIONS = new Set(['sum', 'avg', 'min', 'max', 'count', 'stddev', 'stdvar', 'group', 'topk', 'bottomk', 'quantile', 'count_values', 'limitk', 'limit_ratio']);
const PARAM_AGGREGATIONS = new Set(['topk', 'bottomk', 'quantile', 'count_values', 'limitk', 'limit_ratio']);
/** Function name → [min, max] arguments. */
const FUNCTIONS: Record<string, [number, number]> = {
  abs: [1, 1], absent: [1, 1], absent_over_time: [1, 1], ceil: [1, 1], changes: [1, 1], clamp: [3, 3], clamp_max: [2, 2], clamp_min: [2, 2],
  day_of_month: [0, 1], day_of_week: [0, 1], day_of_year: [0, 1], days_in_month: [0, 1], delta: [1, 1], deriv: [1, 1], exp: [1, 1], floor: [1, 1],
  histogram_avg: [1, 1], histogram_count: [1, 1], histogram_fraction: [3, 3], histogram_quantile: [2, 2], histogram_stddev: [1, 1],
  histogram_stdvar: [1, 1], histogram_sum: [1, 1], hour: [0, 1], idelta: [1, 1], increase: [1, 1], irate: [1, 1], label_join: [3, 99],
  label_replace: [5, 5], ln: [1, 1], log2: [1, 1], log10: [1, 1], minute: [0, 1], month: [0, 1], predict_linear: [2, 2], rate: [1, 1],
  resets: [1, 1], round: [1, 2], scalar: [1, 1], sgn: [1, 1], sort: [1, 1], sort_desc: [1, 1], sort_by_label: [1, 99], sort_by_label_desc: [1, 99],
  sqrt: [1, 1], time: [0, 0], timestamp: [1, 1], vector: [1, 1], year: [0, 1], avg_over_time: [1, 1], min_over_time: [1, 1],
  max_over_time: [1, 1], sum_over_time: [1, 1], count_over_time: [1, 1], quantile_over_time: [2, 2], stddev_over_time: [1, 1],
  stdvar_over_time: [1, 1], last_over_time: [1, 1], present_over_time: [1, 1], mad_over_time: [1, 1], pi: [0, 0],
  acos: [1, 1], acosh: [1, 1], asin: [1, 1], asinh: [1, 1], atan: [1, 1], atanh: [1, 1], cos: [1, 1], cosh: [1, 1], sin: [1, 1], sinh: [1, 1],
  tan: [1, 1], tanh: [1, 1], deg: [1, 1], rad: [1, 1],
};
/** Functions whose argument is a range vector. */
const RANGE_FUNCTIONS = new Set(['absent_over_time', 'changes', 'delta', 'deriv', 'idelta', 'increase', 'irate', 'predict_linear', 'rate', 'resets',
  'avg_over_time', 'min_over_time', 'max_over_time', 'sum_over_time', 'count_over_time', 'quantile_over_time', 'stddev_over_time',
  'stdvar_over_time', 'last_over_time', 'present_over_time', 'mad_over_time']);
const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'and', 'or', 'unless', 'atan2']);

type Tok = { t: 'ident' | 'num' | 'str' | 'dur' | 'op' | 'eof'; v: string; pos: number };

const DURATION = /^(\d+(ms|s|m|h|d|w|y))+$/;

function lex(src: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i] as string;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '#') {
      while (i < src.length && src[i] !== '\n') i++;
      continue;
    }
    if (c === '"' || c === "'" || c === '`') {
      let j = i + 1;
      let v = '';
      while (j < src.length && src[j] !== c) {
        if (src[j] === '\\' && c !== '`') {
          v += src[j + 1] ?? '';
          j += 2;
        } else v += src[j++];
      }
      if (j >= src.length) throw new Error(`unterminated string at ${i}`);
      out.push({ t: 'str', v, pos: i });
      i = j + 1;
      continue;
    }
    const num = /^(0x[0-9a-fA-F]+|\d+(\.\d*)?([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|Inf|NaN)/.exec(src.slice(i));
    const word = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(src.slice(i));
    const dur = /^(\d+(ms|s|m|h|d|w|y))+/.exec(src.slice(i));
    if (dur && !/^[a-zA-Z0-9_]/.test(src.slice(i + dur[0].length))) {
      out.push({ t: 'dur', v: dur[0], pos: i });
      i += dur[0].length;
    } else if (num && /[\d.]/.test(c)) {
      out.push({ t: 'num', v: num[0], pos: i });
      i += num[0].length;
    } else if (word) {
      out.push({ t: 'ident', v: word[0], pos: i });
      i += word[0].length;
    } else {
      const op = ['==', '!=', '>=', '<=', '=~', '!~', '+', '-', '*', '/', '%', '^', '>', '<', '=', '(', ')', '{', '}', '[', ']', ',', ':', '@'].find((o) => src.startsWith(o, i));
      if (!op) throw new Error(`unexpected character ${JSON.stringify(c)} at ${i}`);
      out.push({ t: 'op', v: op, pos: i });
      i += op.length;
    }
  }
  out.push({ t: 'eof', v: '', pos: src.length });
  return out;
}

type Kind = 'scalar' | 'vector' | 'matrix' | 'string';

class Parser {
  readonly #toks: Tok[];
  #i = 0;
  readonly metrics = new Set<string>();
  constructor(src: string) {
    this.#toks = lex(src);
  }
  get #cur(): Tok {
    return this.#toks[this.#i] as Tok;
  }
  #err(msg: string): never {
    throw new Error(`${msg} at position ${this.#cur.pos} (${this.#cur.t} ${JSON.stringify(this.#cur.v)})`);
  }
  #is(v: string): boolean {
    return (this.#cur.t === 'op' || this.#cur.t === 'ident') && this.#cur.v === v;
  }
  #take(v: string): void {
    if (!this.#is(v)) this.#err(`expected ${JSON.stringify(v)}`);
    this.#i++;
  }

  parse(): Kind {
    const k = this.#binary(0);
    if (this.#cur.t !== 'eof') this.#err('unexpected trailing input');
    return k;
  }

  static readonly LEVELS: string[][] = [['or'], ['and', 'unless'], ['==', '!=', '>=', '<=', '>', '<'], ['+', '-'], ['*', '/', '%', 'atan2'], ['^']];

  #binary(level: number): Kind {
    if (level >= Parser.LEVELS.length) return this.#unary();
    let left = this.#binary(level + 1);
    const ops = Parser.LEVELS[level] as string[];
    while (ops.some((o) => this.#is(o))) {
      const op = this.#cur.v;
      this.#i++;
      if (this.#is('bool')) {
        if (level !== 2) this.#err('bool only applies to comparisons');
        this.#i++;
      }
      if (this.#is('on') || this.#is('ignoring')) {
        this.#i++;
        this.#labels();
        if (this.#is('group_left') || this.#is('group_right')) {
          this.#i++;
          if (this.#is('(')) this.#labels();
        }
      }
      // ^ is right-associative.
      const right = op === '^' ? this.#binary(level) : this.#binary(level + 1);
      if (left === 'matrix' || right === 'matrix' || left === 'string' || right === 'string') this.#err(`operator ${op} needs scalars or instant vectors`);
      if (level <= 1 && (left !== 'vector' || right !== 'vector')) this.#err(`set operator ${op} needs two instant vectors`);
      left = left === 'scalar' && right === 'scalar' ? 'scalar' : 'vector';
    }
    return left;
  }

  #unary(): Kind {
    if (this.#is('-') || this.#is('+')) {
      this.#i++;
      const k = this.#unary();
      if (k !== 'scalar' && k !== 'vector') this.#err('unary operator needs a scalar or instant vector');
      return k;
    }
    return this.#postfix(this.#primary());
  }

  #postfix(kind: Kind): Kind {
    let k = kind;
    for (;;) {
      if (this.#is('[')) {
        if (k !== 'vector') this.#err('range or subquery needs an instant vector');
        this.#i++;
        this.#duration();
        if (this.#is(':')) {
          this.#i++;
          if (!this.#is(']')) this.#duration();
        }
        this.#take(']');
        k = 'matrix';
      } else if (this.#is('offset')) {
        this.#i++;
        if (this.#is('-')) this.#i++;
        this.#duration();
      } else if (this.#is('@')) {
        this.#i++;
        if (this.#cur.t === 'num') this.#i++;
        else if (this.#is('start') || this.#is('end')) {
          this.#i++;
          this.#take('(');
          this.#take(')');
        } else this.#err('expected a timestamp after @');
      } else return k;
    }
  }

  #duration(): void {
    if (this.#cur.t !== 'dur' || !DURATION.test(this.#cur.v)) this.#err('expected a duration');
    this.#i++;
  }

  #labels(): string[] {
    this.#take('(');
    const out: string[] = [];
    while (!this.#is(')')) {
      if (this.#cur.t !== 'ident') this.#err('expected a label name');
      out.push(this.#cur.v);
      this.#i++;
      if (!this.#is(')')) this.#take(',');
    }
    this.#take(')');
    return out;
  }

  #primary(): Kind {
    const tok = this.#cur;
    if (tok.t === 'num') {
      this.#i++;
      return 'scalar';
    }
    if (tok.t === 'str') {
      this.#i++;
      return 'string';
    }
    if (this.#is('(')) {
      this.#i++;
      const k = this.#binary(0);
      this.#take(')');
      return k;
    }
    if (this.#is('{')) {
      const name = this.#matchers();
      if (!name) this.#err('a selector needs a metric name or a non-empty matcher');
      if (name !== true) this.metrics.add(name);
      return 'vector';
    }
    if (tok.t !== 'ident') this.#err('expected an expression');
    const id = tok.v;
    if (KEYWORDS.has(id)) this.#err(`unexpected keyword ${id}`);
    this.#i++;
    if (AGGREGATIONS.has(id) && (this.#is('(') || this.#is('by') || this.#is('without'))) return this.#aggregation(id);
    if (this.#is('(')) {
      const arity = FUNCTIONS[id];
      if (!arity) this.#err(`unknown function ${id}`);
      this.#i++;
      const args: Kind[] = [];
      while (!this.#is(')')) {
        args.push(this.#binary(0));
        if (!this.#is(')')) this.#take(',');
      }
      this.#take(')');
      if (args.length < arity[0] || args.length > arity[1]) this.#err(`${id} takes ${arity[0]}..${arity[1]} arguments, got ${args.length}`);
      if (RANGE_FUNCTIONS.has(id) && !args.includes('matrix')) this.#err(`${id} needs a range vector`);
      if (!RANGE_FUNCTIONS.has(id) && args.includes('matrix')) this.#err(`${id} does not take a range vector`);
      return id === 'scalar' || id === 'time' || id === 'pi' ? 'scalar' : 'vector';
    }
    this.metrics.add(id);
    if (this.#is('{')) {
      const name = this.#matchers();
      if (typeof name === 'string') this.#err('metric name given twice');
    }
    return 'vector';
  }

  /** `{a="b", ...}`; returns the __name__ it sets, true when some matcher exists, false when empty. */
  #matchers(): string | boolean {
    this.#take('{');
    let name: string | boolean = false;
    while (!this.#is('}')) {
      if (this.#cur.t !== 'ident' && this.#cur.t !== 'str') this.#err('expected a label name');
      const label = this.#cur.v;
      this.#i++;
      if (!['=', '!=', '=~', '!~'].some((o) => this.#is(o))) this.#err('expected a label matcher operator');
      const op = this.#cur.v;
      this.#i++;
      if (this.#cur.t !== 'str') this.#err('expected a string');
      const value = this.#cur.v;
      if (op.endsWith('~')) {
        try {
          new RegExp(`^(?:${value})$`);
        } catch (e) {
          this.#err(`invalid regular expression ${JSON.stringify(value)}: ${(e as Error).message}`);
        }
      }
      if (label === '__name__' && op === '=') name = value;
      else if (name === false) name = true;
      this.#i++;
      if (!this.#is('}')) this.#take(',');
    }
    this.#take('}');
    return name;
  }

  #aggregation(op: string): Kind {
    let grouped = false;
    if (this.#is('by') || this.#is('without')) {
      this.#i++;
      this.#labels();
      grouped = true;
    }
    this.#take('(');
    if (PARAM_AGGREGATIONS.has(op)) {
      this.#binary(0);
      this.#take(',');
    }
    const k = this.#binary(0);
    if (k !== 'vector') this.#err(`${op} needs an instant vector`);
    this.#take(')');
    if (!grouped && (this.#is('by') || this.#is('without'))) {
      this.#i++;
      this.#labels();
    }
    return 'vector';
  }
}

const GRAFANA_DURATIONS = /\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}/g;

/** Parses `expr` (after substituting Grafana variables); returns the metric names it selects. Throws on a syntax error. */
export function promqlMetrics(expr: string): { metrics: string[]; kind: Kind } {
  const substituted = expr.replace(GRAFANA_DURATIONS, '5m').replace(/\$\{([a-zA-Z_]\w*)(?::\w+)?\}|\$([a-zA-Z_]\w*)|\[\[([a-zA-Z_]\w*)\]\]/g, 'GRAFANA_VARIABLE');
  const p = new Parser(substituted);
  const kind = p.parse();
  if (p.metrics.has('GRAFANA_VARIABLE')) throw new Error(`a template variable stands where PromQL needs a name: ${expr}`);
  return { metrics: [...p.metrics].sort(), kind };
}
