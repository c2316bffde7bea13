//! Lexer and Pratt parser for Flowscope's PromQL-flavoured expression language. Hand-written because
//! the `promql-parser` crate (0.11) drops the parser's error locations (every syntax error reads
//! "invalid promql query") and its AST carries no positions, while errors here must name where in the
//! expression they are; it also brings ~20 crates (lrpar, cfgrammar, bincode, chrono) for a grammar
//! this small. Every node keeps its byte offset; [`ExprError`] turns it into a 1-based character
//! column.

use regex::Regex;

/// A parse or evaluation error at a place in the expression.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} at position {position}")]
pub struct ExprError {
    /// 1-based character column in the expression.
    pub position: usize,
    pub message: String,
}

impl ExprError {
    /// An error at byte offset `offset` of `source`.
    pub fn at(source: &str, offset: usize, message: impl Into<String>) -> Self {
        let offset = offset.min(source.len());
        let position = source
            .char_indices()
            .take_while(|(i, _)| *i < offset)
            .count()
            + 1;
        ExprError {
            position,
            message: message.into(),
        }
    }
}

/// Longest expression accepted, in bytes.
pub const MAX_EXPR_BYTES: usize = 16 * 1024;
/// Deepest nesting of parentheses, calls and operators accepted (keeps recursion bounded).
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Re,
    NotRe,
}

#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    /// Anchored (`^(?:…)$`), for `=~` and `!~`.
    pub regex: Option<Regex>,
}

impl Matcher {
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Re => self.regex.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::NotRe => !self.regex.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Selector {
    pub name: Option<String>,
    pub matchers: Vec<Matcher>,
    /// Seconds; positive looks back.
    pub offset_s: i64,
    pub pos: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Quantile,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
}

impl BinOp {
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Lt | BinOp::Ge | BinOp::Le
        )
    }

    fn precedence(self) -> u8 {
        match self {
            BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Lt | BinOp::Ge | BinOp::Le => 1,
            BinOp::Add | BinOp::Sub => 2,
            BinOp::Mul | BinOp::Div | BinOp::Mod => 3,
            BinOp::Pow => 4,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grouping {
    By(Vec<String>),
    Without(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matching {
    On(Vec<String>),
    Ignoring(Vec<String>),
}

#[derive(Debug, Clone)]
pub enum Expr {
    Number(f64),
    /// An instant-vector selector.
    Selector(Selector),
    /// A range-vector selector `sel[range]`.
    Range {
        sel: Selector,
        range_s: i64,
        pos: usize,
    },
    Call {
        func: String,
        args: Vec<Expr>,
        pos: usize,
    },
    Aggregate {
        op: AggOp,
        param: Option<Box<Expr>>,
        expr: Box<Expr>,
        grouping: Option<Grouping>,
        pos: usize,
    },
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
        return_bool: bool,
        matching: Option<Matching>,
        pos: usize,
    },
    Neg(Box<Expr>, usize),
}

impl Expr {
    pub fn pos(&self) -> usize {
        match self {
            Expr::Number(_) => 0,
            Expr::Selector(s) => s.pos,
            Expr::Range { pos, .. }
            | Expr::Call { pos, .. }
            | Expr::Aggregate { pos, .. }
            | Expr::Binary { pos, .. }
            | Expr::Neg(_, pos) => *pos,
        }
    }

    /// Every range and offset in the expression, in seconds (the resolution must divide them).
    pub fn durations(&self, out: &mut Vec<(i64, usize)>) {
        match self {
            Expr::Number(_) => {}
            Expr::Selector(s) => {
                if s.offset_s != 0 {
                    out.push((s.offset_s, s.pos));
                }
            }
            Expr::Range { sel, range_s, pos } => {
                out.push((*range_s, *pos));
                if sel.offset_s != 0 {
                    out.push((sel.offset_s, sel.pos));
                }
            }
            Expr::Call { args, .. } => args.iter().for_each(|a| a.durations(out)),
            Expr::Aggregate { param, expr, .. } => {
                if let Some(p) = param {
                    p.durations(out);
                }
                expr.durations(out);
            }
            Expr::Binary { lhs, rhs, .. } => {
                lhs.durations(out);
                rhs.durations(out);
            }
            Expr::Neg(e, _) => e.durations(out),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Number(f64),
    Duration(i64),
    Str(String),
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Comma,
    Colon,
    At,
    Op(&'static str),
    Eof,
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Number(n) => format!("number {n}"),
        Tok::Duration(d) => format!("duration {d}s"),
        Tok::Str(s) => format!("string {s:?}"),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::LBrace => "`{`".into(),
        Tok::RBrace => "`}`".into(),
        Tok::LBracket => "`[`".into(),
        Tok::RBracket => "`]`".into(),
        Tok::Comma => "`,`".into(),
        Tok::Colon => "`:`".into(),
        Tok::At => "`@`".into(),
        Tok::Op(o) => format!("`{o}`"),
        Tok::Eof => "end of expression".into(),
    }
}

/// A duration like `5m`, `1h30m`, `90s`, `500ms` in whole seconds; `None` if `text` is not one.
pub fn parse_duration(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut total_ms: i64 = 0;
    if bytes.is_empty() {
        return None;
    }
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return None;
        }
        let n: i64 = text[start..i].parse().ok()?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let ms = match &text[unit_start..i] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            _ => return None,
        };
        total_ms = total_ms.checked_add(n.checked_mul(ms)?)?;
    }
    if total_ms % 1000 != 0 {
        return None;
    }
    Some(total_ms / 1000)
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn err(&self, at: usize, msg: impl Into<String>) -> ExprError {
        ExprError::at(self.src, at, msg)
    }

    fn tokens(mut self) -> Result<Vec<(Tok, usize)>, ExprError> {
        let mut out = Vec::new();
        loop {
            let (tok, at) = self.next()?;
            let end = tok == Tok::Eof;
            out.push((tok, at));
            if end {
                return Ok(out);
            }
        }
    }

    fn next(&mut self) -> Result<(Tok, usize), ExprError> {
        let bytes = self.src.as_bytes();
        while self.pos < bytes.len() {
            if bytes[self.pos].is_ascii_whitespace() {
                self.pos += 1;
            } else if bytes[self.pos] == b'#' {
                while self.pos < bytes.len() && bytes[self.pos] != b'\n' {
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
        let start = self.pos;
        let Some(&c) = bytes.get(start) else {
            return Ok((Tok::Eof, start));
        };
        let two = self.src.get(start..start + 2).unwrap_or("");
        let op2 = ["==", "!=", ">=", "<=", "=~", "!~"]
            .into_iter()
            .find(|o| *o == two);
        if let Some(op) = op2 {
            self.pos += 2;
            return Ok((Tok::Op(op), start));
        }
        let single = match c {
            b'(' => Some(Tok::LParen),
            b')' => Some(Tok::RParen),
            b'{' => Some(Tok::LBrace),
            b'}' => Some(Tok::RBrace),
            b'[' => Some(Tok::LBracket),
            b']' => Some(Tok::RBracket),
            b',' => Some(Tok::Comma),
            b':' => Some(Tok::Colon),
            b'@' => Some(Tok::At),
            b'+' => Some(Tok::Op("+")),
            b'-' => Some(Tok::Op("-")),
            b'*' => Some(Tok::Op("*")),
            b'/' => Some(Tok::Op("/")),
            b'%' => Some(Tok::Op("%")),
            b'^' => Some(Tok::Op("^")),
            b'>' => Some(Tok::Op(">")),
            b'<' => Some(Tok::Op("<")),
            b'=' => Some(Tok::Op("=")),
            _ => None,
        };
        if let Some(tok) = single {
            self.pos += 1;
            return Ok((tok, start));
        }
        if c == b'"' || c == b'\'' || c == b'`' {
            return self.string(c).map(|s| (Tok::Str(s), start));
        }
        if c.is_ascii_digit() || (c == b'.' && bytes.get(start + 1).is_some_and(u8::is_ascii_digit))
        {
            let mut i = start;
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric()
                    || bytes[i] == b'.'
                    || ((bytes[i] == b'+' || bytes[i] == b'-')
                        && i > start
                        && matches!(bytes[i - 1], b'e' | b'E')))
            {
                i += 1;
            }
            let text = &self.src[start..i];
            self.pos = i;
            if let Some(d) = parse_duration(text) {
                if text.bytes().any(|b| b.is_ascii_alphabetic()) {
                    return Ok((Tok::Duration(d), start));
                }
            }
            return match text.parse::<f64>() {
                Ok(n) => Ok((Tok::Number(n), start)),
                Err(_) => Err(self.err(start, format!("bad number or duration `{text}`"))),
            };
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let mut i = start;
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b':' | b'.'))
            {
                i += 1;
            }
            self.pos = i;
            let word = &self.src[start..i];
            if matches!(
                word.to_ascii_lowercase().as_str(),
                "inf" | "nan" | "+inf" | "-inf"
            ) {
                if let Ok(n) = word.parse::<f64>() {
                    return Ok((Tok::Number(n), start));
                }
            }
            return Ok((Tok::Ident(word.to_string()), start));
        }
        let ch = self.src[start..].chars().next().unwrap_or('?');
        Err(self.err(start, format!("unexpected character {ch:?}")))
    }

    fn string(&mut self, quote: u8) -> Result<String, ExprError> {
        let start = self.pos;
        let mut out = String::new();
        let mut chars = self.src[start + 1..].char_indices();
        while let Some((i, ch)) = chars.next() {
            if ch as u32 == quote as u32 {
                self.pos = start + 1 + i + 1;
                return Ok(out);
            }
            if ch == '\\' && quote != b'`' {
                match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, c)) => out.push(c),
                    None => break,
                }
            } else {
                out.push(ch);
            }
        }
        Err(self.err(start, "unterminated string"))
    }
}

/// Parses `src` into an expression.
pub fn parse(src: &str) -> Result<Expr, ExprError> {
    if src.len() > MAX_EXPR_BYTES {
        return Err(ExprError::at(
            src,
            MAX_EXPR_BYTES,
            format!("expression is longer than {MAX_EXPR_BYTES} bytes"),
        ));
    }
    let tokens = Lexer { src, pos: 0 }.tokens()?;
    let mut parser = Parser {
        src,
        tokens,
        i: 0,
        depth: 0,
    };
    let expr = parser.expr(0)?;
    let (tok, at) = parser.peek();
    if *tok != Tok::Eof {
        let msg = format!("unexpected {} after a complete expression", describe(tok));
        return Err(ExprError::at(src, at, msg));
    }
    Ok(expr)
}

struct Parser<'a> {
    src: &'a str,
    tokens: Vec<(Tok, usize)>,
    i: usize,
    depth: usize,
}

const AGGREGATIONS: [(&str, AggOp); 6] = [
    ("sum", AggOp::Sum),
    ("avg", AggOp::Avg),
    ("min", AggOp::Min),
    ("max", AggOp::Max),
    ("count", AggOp::Count),
    ("quantile", AggOp::Quantile),
];

const UNSUPPORTED_AGGREGATIONS: [&str; 7] = [
    "topk",
    "bottomk",
    "stddev",
    "stdvar",
    "count_values",
    "group",
    "limitk",
];

impl Parser<'_> {
    fn peek(&self) -> (&Tok, usize) {
        let (t, p) = &self.tokens[self.i.min(self.tokens.len() - 1)];
        (t, *p)
    }

    fn bump(&mut self) -> (Tok, usize) {
        let t = self.tokens[self.i.min(self.tokens.len() - 1)].clone();
        if self.i < self.tokens.len() - 1 {
            self.i += 1;
        }
        t
    }

    fn err(&self, at: usize, msg: impl Into<String>) -> ExprError {
        ExprError::at(self.src, at, msg)
    }

    fn expect(&mut self, want: Tok, context: &str) -> Result<usize, ExprError> {
        let (tok, at) = self.peek();
        if *tok == want {
            self.bump();
            Ok(at)
        } else {
            let msg = format!(
                "expected {} {context}, found {}",
                describe(&want),
                describe(tok)
            );
            Err(self.err(at, msg))
        }
    }

    fn binop(&self) -> Option<BinOp> {
        match self.peek().0 {
            Tok::Op("+") => Some(BinOp::Add),
            Tok::Op("-") => Some(BinOp::Sub),
            Tok::Op("*") => Some(BinOp::Mul),
            Tok::Op("/") => Some(BinOp::Div),
            Tok::Op("%") => Some(BinOp::Mod),
            Tok::Op("^") => Some(BinOp::Pow),
            Tok::Op("==") => Some(BinOp::Eq),
            Tok::Op("!=") => Some(BinOp::Ne),
            Tok::Op(">") => Some(BinOp::Gt),
            Tok::Op("<") => Some(BinOp::Lt),
            Tok::Op(">=") => Some(BinOp::Ge),
            Tok::Op("<=") => Some(BinOp::Le),
            _ => None,
        }
    }

    fn expr(&mut self, min_prec: u8) -> Result<Expr, ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let at = self.peek().1;
            return Err(self.err(at, format!("expression nests deeper than {MAX_DEPTH}")));
        }
        let mut lhs = self.unary()?;
        loop {
            if let (Tok::Ident(word), at) = self.peek() {
                if matches!(word.as_str(), "and" | "or" | "unless" | "atan2") {
                    let msg = format!("the `{word}` operator is not supported");
                    return Err(self.err(at, msg));
                }
            }
            let Some(op) = self.binop() else { break };
            let prec = op.precedence();
            if prec < min_prec {
                break;
            }
            let (_, pos) = self.bump();
            let mut return_bool = false;
            if matches!(self.peek().0, Tok::Ident(w) if w == "bool") {
                if !op.is_comparison() {
                    let at = self.peek().1;
                    return Err(self.err(at, "`bool` only follows a comparison operator"));
                }
                self.bump();
                return_bool = true;
            }
            let mut matching = None;
            if let (Tok::Ident(w), _) = self.peek() {
                if w == "on" || w == "ignoring" {
                    let on = w == "on";
                    self.bump();
                    let labels = self.label_list("after `on`/`ignoring`")?;
                    matching = Some(if on {
                        Matching::On(labels)
                    } else {
                        Matching::Ignoring(labels)
                    });
                    if let (Tok::Ident(w), at) = self.peek() {
                        if w == "group_left" || w == "group_right" {
                            let msg = format!(
                                "`{w}` (many-to-one matching) is not supported; only one-to-one matching is"
                            );
                            return Err(self.err(at, msg));
                        }
                    }
                }
            }
            // `^` is right-associative; the others are left-associative.
            let next = if op == BinOp::Pow { prec } else { prec + 1 };
            let rhs = self.expr(next)?;
            lhs = Expr::Binary {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
                return_bool,
                matching,
                pos,
            };
        }
        self.depth -= 1;
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        match self.peek() {
            (Tok::Op("-"), at) => {
                self.bump();
                // Binds looser than `^`: -2^2 = -4.
                let inner = self.expr(BinOp::Pow.precedence())?;
                Ok(match inner {
                    Expr::Number(n) => Expr::Number(-n),
                    other => Expr::Neg(Box::new(other), at),
                })
            }
            (Tok::Op("+"), _) => {
                self.bump();
                self.expr(BinOp::Pow.precedence())
            }
            _ => {
                let primary = self.primary()?;
                self.postfix(primary)
            }
        }
    }

    fn postfix(&mut self, mut expr: Expr) -> Result<Expr, ExprError> {
        loop {
            match self.peek() {
                (Tok::LBracket, at) => {
                    self.bump();
                    let Expr::Selector(sel) = expr else {
                        return Err(self.err(
                            at,
                            "a range `[…]` follows only a metric selector (subqueries are not supported)",
                        ));
                    };
                    if sel.offset_s != 0 {
                        return Err(self.err(at, "`offset` goes after the range, not before it"));
                    }
                    let range_s = self.duration("as the range")?;
                    if let (Tok::Colon, at) = self.peek() {
                        return Err(self.err(at, "subqueries (`[range:step]`) are not supported"));
                    }
                    self.expect(Tok::RBracket, "to close the range")?;
                    if range_s <= 0 {
                        return Err(self.err(at, "a range must be positive"));
                    }
                    expr = Expr::Range {
                        sel,
                        range_s,
                        pos: at,
                    };
                }
                (Tok::Ident(w), at) if w == "offset" => {
                    self.bump();
                    let negative = if let (Tok::Op("-"), _) = self.peek() {
                        self.bump();
                        true
                    } else {
                        false
                    };
                    let d = self.duration("after `offset`")?;
                    let d = if negative { -d } else { d };
                    match &mut expr {
                        Expr::Selector(sel) | Expr::Range { sel, .. } if sel.offset_s == 0 => {
                            sel.offset_s = d
                        }
                        Expr::Selector(_) | Expr::Range { .. } => {
                            return Err(self.err(at, "a selector takes one `offset`"))
                        }
                        _ => {
                            return Err(self.err(at, "`offset` follows only a selector or a range"))
                        }
                    }
                }
                (Tok::At, at) => {
                    return Err(self.err(at, "the `@` modifier is not supported"));
                }
                _ => return Ok(expr),
            }
        }
    }

    fn duration(&mut self, context: &str) -> Result<i64, ExprError> {
        match self.bump() {
            (Tok::Duration(d), _) => Ok(d),
            (Tok::Number(n), at) => Err(self.err(
                at,
                format!(
                    "expected a duration {context} (like `5m`), found the number {n}: add a unit"
                ),
            )),
            (tok, at) => {
                let msg = format!(
                    "expected a duration {context} (like `5m`), found {}",
                    describe(&tok)
                );
                Err(self.err(at, msg))
            }
        }
    }

    fn label_list(&mut self, context: &str) -> Result<Vec<String>, ExprError> {
        self.expect(Tok::LParen, context)?;
        let mut labels = Vec::new();
        loop {
            match self.bump() {
                (Tok::RParen, _) => return Ok(labels),
                (Tok::Ident(name), _) => {
                    labels.push(name);
                    match self.bump() {
                        (Tok::Comma, _) => {}
                        (Tok::RParen, _) => return Ok(labels),
                        (tok, at) => {
                            let msg = format!(
                                "expected `,` or `)` in a label list, found {}",
                                describe(&tok)
                            );
                            return Err(self.err(at, msg));
                        }
                    }
                }
                (tok, at) => {
                    let msg = format!("expected a label name, found {}", describe(&tok));
                    return Err(self.err(at, msg));
                }
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, ExprError> {
        let (tok, at) = self.bump();
        match tok {
            Tok::Number(n) => Ok(Expr::Number(n)),
            Tok::LParen => {
                let inner = self.expr(0)?;
                self.expect(Tok::RParen, "to close the parenthesis")?;
                Ok(inner)
            }
            Tok::LBrace => {
                let matchers = self.matchers()?;
                if matchers.is_empty() {
                    return Err(
                        self.err(at, "a selector needs a metric name or at least one matcher")
                    );
                }
                Ok(Expr::Selector(Selector {
                    name: None,
                    matchers,
                    offset_s: 0,
                    pos: at,
                }))
            }
            Tok::Ident(word) => self.ident(word, at),
            Tok::Str(_) => Err(self.err(at, "a string is not an expression here")),
            other => {
                let msg = format!("expected an expression, found {}", describe(&other));
                Err(self.err(at, msg))
            }
        }
    }

    fn ident(&mut self, word: String, at: usize) -> Result<Expr, ExprError> {
        let next = self.peek().0.clone();
        let is_grouping = matches!(&next, Tok::Ident(w) if w == "by" || w == "without");
        if let Some((_, op)) = AGGREGATIONS.iter().find(|(n, _)| *n == word) {
            if next == Tok::LParen || is_grouping {
                return self.aggregate(*op, at);
            }
        }
        if UNSUPPORTED_AGGREGATIONS.contains(&word.as_str()) && (next == Tok::LParen || is_grouping)
        {
            return Err(self.err(
                at,
                format!(
                    "the aggregation `{word}` is not supported; supported: sum, avg, min, max, count, quantile"
                ),
            ));
        }
        if next == Tok::LParen {
            if !super::eval::FUNCTIONS.contains(&word.as_str()) {
                return Err(self.err(
                    at,
                    format!(
                        "unknown or unsupported function `{word}`; supported: {}",
                        super::eval::FUNCTIONS.join(", ")
                    ),
                ));
            }
            self.bump();
            let mut args = Vec::new();
            if self.peek().0 == &Tok::RParen {
                self.bump();
            } else {
                loop {
                    args.push(self.expr(0)?);
                    match self.bump() {
                        (Tok::Comma, _) => {}
                        (Tok::RParen, _) => break,
                        (tok, at) => {
                            let msg = format!(
                                "expected `,` or `)` in the arguments of `{word}`, found {}",
                                describe(&tok)
                            );
                            return Err(self.err(at, msg));
                        }
                    }
                }
            }
            return Ok(Expr::Call {
                func: word,
                args,
                pos: at,
            });
        }
        if matches!(
            word.as_str(),
            "by" | "without" | "on" | "ignoring" | "bool" | "offset" | "group_left" | "group_right"
        ) {
            return Err(self.err(at, format!("unexpected keyword `{word}`")));
        }
        let mut matchers = Vec::new();
        if self.peek().0 == &Tok::LBrace {
            self.bump();
            matchers = self.matchers()?;
        }
        Ok(Expr::Selector(Selector {
            name: Some(word),
            matchers,
            offset_s: 0,
            pos: at,
        }))
    }

    fn aggregate(&mut self, op: AggOp, pos: usize) -> Result<Expr, ExprError> {
        let mut grouping = self.grouping()?;
        self.expect(Tok::LParen, "after the aggregation")?;
        let param = if op == AggOp::Quantile {
            let p = self.expr(0)?;
            self.expect(Tok::Comma, "after the quantile's φ")?;
            Some(Box::new(p))
        } else {
            None
        };
        let inner = self.expr(0)?;
        if let (Tok::Comma, at) = self.peek() {
            return Err(self.err(at, "this aggregation takes one expression"));
        }
        self.expect(Tok::RParen, "to close the aggregation")?;
        if grouping.is_none() {
            grouping = self.grouping()?;
        } else if let (Tok::Ident(w), at) = self.peek() {
            if w == "by" || w == "without" {
                return Err(self.err(at, "a second `by`/`without` clause"));
            }
        }
        Ok(Expr::Aggregate {
            op,
            param,
            expr: Box::new(inner),
            grouping,
            pos,
        })
    }

    fn grouping(&mut self) -> Result<Option<Grouping>, ExprError> {
        match self.peek().0 {
            Tok::Ident(w) if w == "by" => {
                self.bump();
                Ok(Some(Grouping::By(self.label_list("after `by`")?)))
            }
            Tok::Ident(w) if w == "without" => {
                self.bump();
                Ok(Some(Grouping::Without(self.label_list("after `without`")?)))
            }
            _ => Ok(None),
        }
    }

    /// Matchers after `{`, through `}`.
    fn matchers(&mut self) -> Result<Vec<Matcher>, ExprError> {
        let mut out = Vec::new();
        loop {
            let (tok, at) = self.bump();
            let name = match tok {
                Tok::RBrace => return Ok(out),
                Tok::Ident(name) => name,
                other => {
                    let msg = format!(
                        "expected a label name in a selector, found {}",
                        describe(&other)
                    );
                    return Err(self.err(at, msg));
                }
            };
            let (tok, op_at) = self.bump();
            let op = match tok {
                Tok::Op("=") => MatchOp::Equal,
                Tok::Op("!=") => MatchOp::NotEqual,
                Tok::Op("=~") => MatchOp::Re,
                Tok::Op("!~") => MatchOp::NotRe,
                other => {
                    let msg = format!(
                        "expected `=`, `!=`, `=~` or `!~` after the label `{name}`, found {}",
                        describe(&other)
                    );
                    return Err(self.err(op_at, msg));
                }
            };
            let (tok, value_at) = self.bump();
            let Tok::Str(value) = tok else {
                let msg = format!(
                    "expected a quoted value for `{name}`, found {}",
                    describe(&tok)
                );
                return Err(self.err(value_at, msg));
            };
            let regex = match op {
                MatchOp::Re | MatchOp::NotRe => Some(
                    regex::RegexBuilder::new(&format!("^(?:{value})$"))
                        .size_limit(1 << 20)
                        .build()
                        .map_err(|e| {
                            self.err(
                                value_at,
                                format!("bad regular expression for `{name}`: {e}"),
                            )
                        })?,
                ),
                _ => None,
            };
            out.push(Matcher {
                name,
                op,
                value,
                regex,
            });
            match self.bump() {
                (Tok::Comma, _) => {}
                (Tok::RBrace, _) => return Ok(out),
                (tok, at) => {
                    let msg = format!(
                        "expected `,` or `}}` in a selector, found {}",
                        describe(&tok)
                    );
                    return Err(self.err(at, msg));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(src: &str) -> ExprError {
        parse(src).expect_err(src)
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Some(300));
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("1d"), Some(86_400));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("5x"), None);
    }

    #[test]
    fn parses_the_supported_forms() {
        for src in [
            "http_requests_total",
            "http_requests_total{job=\"api\", route=~\"/a.*\", code!=\"200\", x!~'y'}",
            "rate(http_requests_total[5m] offset 1h)",
            "sum by (route) (rate(x[5m]))",
            "sum(rate(x[5m])) without (instance)",
            "quantile(0.95, sum by (route)(x_bucket))",
            "histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m])))",
            "a / on(route) b > bool 0.1",
            "-2 ^ 2 + 3 * 4 % 5",
            "{service.name=\"api\"}",
            "max_over_time(x[1h] offset 1d)",
        ] {
            parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        }
    }

    #[test]
    fn precedence() {
        let Expr::Neg(inner, _) = parse("-2 ^ 2").unwrap() else {
            panic!("-2^2 is -(2^2)")
        };
        assert!(matches!(*inner, Expr::Binary { op: BinOp::Pow, .. }));
        let e = parse("1 + 2 * 3").unwrap();
        let Expr::Binary { op, rhs, .. } = e else {
            panic!()
        };
        assert_eq!(op, BinOp::Add);
        assert!(matches!(*rhs, Expr::Binary { op: BinOp::Mul, .. }));
    }

    #[test]
    fn errors_name_the_position() {
        let e = err("sum(rate(x[5m])");
        assert_eq!(e.position, 16, "{e}");
        assert!(e.message.contains("to close the aggregation"), "{e}");

        let e = err("rate(x[5])");
        assert_eq!(e.position, 8, "{e}");
        assert!(e.message.contains("add a unit"), "{e}");

        let e = err("x{route=~\"(\"}");
        assert_eq!(e.position, 10, "{e}");
        assert!(e.message.contains("bad regular expression"), "{e}");

        let e = err("topk(3, x)");
        assert_eq!(e.position, 1);
        assert!(e.message.contains("not supported"), "{e}");

        let e = err("x + label_replace(y, 'a', 'b', 'c', 'd')");
        assert_eq!(e.position, 5);
        assert!(
            e.message.contains("unsupported function `label_replace`"),
            "{e}"
        );

        let e = err("rate(x[5m:1m])");
        assert_eq!(e.position, 10);
        assert!(e.message.contains("subqueries"), "{e}");

        let e = err("a * on(x) group_left b");
        assert_eq!(e.position, 11);

        let e = err("a and b");
        assert_eq!(e.position, 3);

        let e = err("x @ 100");
        assert_eq!(e.position, 3);

        // Positions count characters, not bytes.
        let e = err("x{route=\"é\"} +");
        assert_eq!(e.position, 15, "{e}");
        assert!(e.to_string().ends_with("at position 15"), "{e}");

        let e = err("x{a=\"b}");
        assert_eq!(e.position, 5);
        assert!(e.message.contains("unterminated"), "{e}");
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{}1{}", "(".repeat(200), ")".repeat(200));
        assert!(err(&deep).message.contains("nests deeper"));
        let long = "x+".repeat(MAX_EXPR_BYTES);
        assert!(err(&long).message.contains("longer than"));
    }
}
