/**
 * The plan grammar: a chevrotain CstParser with rules as class properties, error recovery enabled so that
 * several syntax errors come out of one run.
 *
 *   plan        := (Newline | statement)*        (parsePlan parses each line with `statement`, for recovery)
 *   statement   := dataStmt | verifyStmt | stepStmt
 *   dataStmt    := 'data' NAME '=' FORMAT STRING (NAME value)*
 *   verifyStmt  := 'verify' 'on' NAME ':' requirement (';' requirement?)*
 *   requirement := (NAME | STRING | '*' | 'all') term*          term := NAME | CMP | NUMBER '%'?
 *   stepStmt    := NAME stepArg*
 *   stepArg     := 'on' NAME | 'by' NAME | 'layers' selector | 'except' ('layers' selector | NAME valueList)
 *                | 'where' NAME CMP number | 'keep' CMP number | valueList
 *   selector    := 'all' | layerItem (',' layerItem)*               layerItem := NUMBER ('..' NUMBER)?
 *   valueList   := value (',' value)*
 *   value       := NUMBER ('%' | '..' NUMBER)? | STRING | NAME ('(' NUMBER ')')? | 'all'
 *   number      := NUMBER '%'?
 */
import {
  CstParser,
  EOF,
  type CstNode,
  type IParserErrorMessageProvider,
  type IToken,
  type TokenType,
} from 'chevrotain';
import * as T from './tokens.js';

/** Statements are parsed one line at a time (see visitor.ts), so EOF is the end of the statement's line. */
const describe = (t: IToken | undefined): string =>
  !t || t.tokenType === EOF || t.tokenType === T.Newline ? 'the end of the line' : `'${t.image}'`;

const label = (t: TokenType): string => (t === EOF ? 'the end of the line' : (t.LABEL ?? t.name));

const uniq = (xs: string[]): string[] => [...new Set(xs)];

const orList = (xs: string[]): string => {
  const ys = xs.filter(Boolean);
  return ys.length <= 1 ? (ys[0] ?? 'something else') : `${ys.slice(0, -1).join(', ')} or ${ys[ys.length - 1]}`;
};

const RULE_NAMES: Record<string, string> = {
  plan: 'the plan',
  statement: 'a statement',
  dataStmt: "a 'data' statement",
  verifyStmt: "a 'verify' statement",
  requirement: 'a verify requirement',
  stepStmt: 'a step',
  stepArg: 'a step',
  selector: 'a layer selector',
  layerItem: 'a layer selector',
  valueList: 'a value',
  value: 'a value',
  number: 'a number',
};

/** Error messages in plain English (the codes are assigned in visitor.ts from the exception kind). */
export const messages: IParserErrorMessageProvider = {
  buildMismatchTokenMessage({ expected, actual }) {
    return `expected ${label(expected)} but found ${describe(actual)}`;
  },
  buildNotAllInputParsedMessage({ firstRedundant }) {
    return `unexpected ${describe(firstRedundant)} after the end of the statement`;
  },
  buildNoViableAltMessage({ expectedPathsPerAlt, actual, ruleName }) {
    const firsts = uniq(expectedPathsPerAlt.flatMap((alt) => alt.map((path) => (path[0] ? label(path[0]) : ''))));
    return `expected ${orList(firsts)} in ${RULE_NAMES[ruleName] ?? ruleName}, found ${describe(actual[0])}`;
  },
  buildEarlyExitMessage({ expectedIterationPaths, actual, ruleName }) {
    const firsts = uniq(expectedIterationPaths.map((path) => (path[0] ? label(path[0]) : '')));
    return `expected ${orList(firsts)} in ${RULE_NAMES[ruleName] ?? ruleName}, found ${describe(actual[0])}`;
  },
};

export class PlanParser extends CstParser {
  constructor() {
    super(T.allTokens, { recoveryEnabled: true, errorMessageProvider: messages, maxLookahead: 3 });
    this.performSelfAnalysis();
  }

  plan = this.RULE('plan', () => {
    this.MANY(() => {
      this.OR([{ ALT: () => this.CONSUME(T.Newline) }, { ALT: () => this.SUBRULE(this.statement) }]);
    });
  });

  statement = this.RULE('statement', () => {
    this.OR([
      { ALT: () => this.SUBRULE(this.dataStmt) },
      { ALT: () => this.SUBRULE(this.verifyStmt) },
      { ALT: () => this.SUBRULE(this.stepStmt) },
    ]);
  });

  dataStmt = this.RULE('dataStmt', () => {
    this.CONSUME(T.Data);
    this.CONSUME(T.Identifier, { LABEL: 'name' });
    this.CONSUME(T.Equals);
    this.CONSUME2(T.Identifier, { LABEL: 'format' });
    this.CONSUME(T.StringLit, { LABEL: 'path' });
    this.MANY(() => {
      this.CONSUME3(T.Identifier, { LABEL: 'optionName' });
      this.SUBRULE(this.value, { LABEL: 'optionValue' });
    });
  });

  verifyStmt = this.RULE('verifyStmt', () => {
    this.CONSUME(T.Verify);
    this.CONSUME(T.On);
    this.CONSUME(T.Identifier, { LABEL: 'data' });
    this.CONSUME(T.Colon);
    this.SUBRULE(this.requirement);
    this.MANY(() => {
      this.CONSUME(T.Semicolon);
      this.OPTION(() => this.SUBRULE2(this.requirement));
    });
  });

  requirement = this.RULE('requirement', () => {
    this.OR([
      { ALT: () => this.CONSUME(T.Identifier, { LABEL: 'subject' }) },
      { ALT: () => this.CONSUME(T.StringLit, { LABEL: 'subject' }) },
      { ALT: () => this.CONSUME(T.Star, { LABEL: 'subject' }) },
      { ALT: () => this.CONSUME(T.All, { LABEL: 'subject' }) },
    ]);
    this.MANY(() => {
      this.OR2([
        { ALT: () => this.CONSUME2(T.Identifier, { LABEL: 'term' }) },
        { ALT: () => this.CONSUME(T.CompareOp, { LABEL: 'term' }) },
        {
          ALT: () => {
            this.CONSUME(T.NumberLit, { LABEL: 'term' });
            this.OPTION(() => this.CONSUME(T.Percent, { LABEL: 'term' }));
          },
        },
      ]);
    });
  });

  stepStmt = this.RULE('stepStmt', () => {
    this.CONSUME(T.Identifier, { LABEL: 'keyword' });
    this.MANY(() => this.SUBRULE(this.stepArg));
  });

  stepArg = this.RULE('stepArg', () => {
    this.OR([
      {
        ALT: () => {
          this.CONSUME(T.On);
          this.CONSUME(T.Identifier, { LABEL: 'name' });
        },
      },
      {
        ALT: () => {
          this.CONSUME(T.By);
          this.CONSUME2(T.Identifier, { LABEL: 'name' });
        },
      },
      {
        ALT: () => {
          this.CONSUME(T.Layers);
          this.SUBRULE(this.selector);
        },
      },
      {
        ALT: () => {
          this.CONSUME(T.Except);
          this.OR2([
            {
              ALT: () => {
                this.CONSUME2(T.Layers);
                this.SUBRULE2(this.selector);
              },
            },
            {
              ALT: () => {
                this.CONSUME3(T.Identifier, { LABEL: 'name' });
                this.SUBRULE(this.valueList);
              },
            },
          ]);
        },
      },
      {
        ALT: () => {
          this.CONSUME(T.Where);
          this.CONSUME4(T.Identifier, { LABEL: 'name' });
          this.CONSUME(T.CompareOp);
          this.SUBRULE(this.number);
        },
      },
      {
        ALT: () => {
          this.CONSUME(T.Keep);
          this.CONSUME2(T.CompareOp);
          this.SUBRULE2(this.number);
        },
      },
      { ALT: () => this.SUBRULE2(this.valueList) },
    ]);
  });

  selector = this.RULE('selector', () => {
    this.OR([
      { ALT: () => this.CONSUME(T.All) },
      {
        ALT: () => {
          this.SUBRULE(this.layerItem);
          this.MANY(() => {
            this.CONSUME(T.Comma);
            this.SUBRULE2(this.layerItem);
          });
        },
      },
    ]);
  });

  layerItem = this.RULE('layerItem', () => {
    this.CONSUME(T.NumberLit, { LABEL: 'from' });
    this.OPTION(() => {
      this.CONSUME(T.DotDot);
      this.CONSUME2(T.NumberLit, { LABEL: 'to' });
    });
  });

  valueList = this.RULE('valueList', () => {
    this.SUBRULE(this.value);
    this.MANY(() => {
      this.CONSUME(T.Comma);
      this.SUBRULE2(this.value);
    });
  });

  value = this.RULE('value', () => {
    this.OR([
      {
        ALT: () => {
          this.CONSUME(T.NumberLit);
          this.OPTION(() => {
            this.OR2([
              { ALT: () => this.CONSUME(T.Percent) },
              {
                ALT: () => {
                  this.CONSUME(T.DotDot);
                  this.CONSUME2(T.NumberLit, { LABEL: 'to' });
                },
              },
            ]);
          });
        },
      },
      { ALT: () => this.CONSUME(T.StringLit) },
      {
        ALT: () => {
          this.CONSUME(T.Identifier);
          this.OPTION2(() => {
            this.CONSUME(T.LParen);
            this.CONSUME3(T.NumberLit, { LABEL: 'arg' });
            this.CONSUME(T.RParen);
          });
        },
      },
      { ALT: () => this.CONSUME(T.All) },
    ]);
  });

  number = this.RULE('number', () => {
    this.CONSUME(T.NumberLit);
    this.OPTION(() => this.CONSUME(T.Percent));
  });
}

/** One parser instance, reused (chevrotain parsers are reset by setting `input`). */
export const planParser = new PlanParser();

export type { CstNode };
