//! Builds template trees from tokens, with Go's grammar, scoping checks and `define` rules.

use crate::lexer::{Kw, LexResult, SrcError, Tok, Token, lex};
use crate::value::Value;

/// A list of nodes.
pub(crate) type List = Vec<Node>;

/// A node of a template tree.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    Text(String),
    Action(Pipe),
    If(Control),
    With(Control),
    Range(Control),
    Template {
        pos: usize,
        name: String,
        pipe: Option<Pipe>,
    },
    Break,
    Continue,
}

/// `if`, `with` and `range`: a pipeline, a body, an optional `else` body.
#[derive(Clone, Debug)]
pub(crate) struct Control {
    pub pipe: Pipe,
    pub list: List,
    pub else_list: Option<List>,
}

/// A pipeline: optional variable declarations and `|`-separated commands.
#[derive(Clone, Debug)]
pub(crate) struct Pipe {
    pub pos: usize,
    pub decl: Vec<String>,
    pub is_assign: bool,
    pub cmds: Vec<Command>,
}

/// One command of a pipeline: an operand followed by its arguments.
#[derive(Clone, Debug)]
pub(crate) struct Command {
    pub pos: usize,
    /// The command's source text, for error messages.
    pub text: String,
    pub args: Vec<Arg>,
}

/// An operand.
#[derive(Clone, Debug)]
pub(crate) enum Arg {
    /// `.A.B`
    Field(Vec<String>),
    /// `$x.A.B` (the name includes `$`).
    Variable(String, Vec<String>),
    /// `(pipeline).A.B` or `fn.A`.
    Chain(Box<Arg>, Vec<String>),
    Dot,
    Nil,
    Const(Value),
    Ident(String),
    Pipe(Box<Pipe>),
}

/// A parsed tree: either a file body or a `define`/`block` body.
#[derive(Clone, Debug)]
pub(crate) struct Tree {
    pub name: String,
    pub root: List,
}

/// Whether a tree prints nothing but white space (Go's `IsEmptyTree`).
pub(crate) fn is_empty_tree(list: &List) -> bool {
    list.iter()
        .all(|n| matches!(n, Node::Text(t) if t.trim().is_empty()))
}

/// Names of the functions a template may call (built-ins and resticprofile's).
pub(crate) fn is_function(name: &str) -> bool {
    crate::funcs::FUNCTIONS.contains(&name)
}

/// Parses a file: its body tree (named `name`) and the trees it defines, in order.
pub(crate) fn parse_file(name: &str, src: &str) -> LexResult<Vec<Tree>> {
    let toks = lex(src)?;
    let mut p = Parser {
        src,
        toks,
        i: 0,
        vars: vec!["$".into()],
        range_depth: 0,
        trees: vec![],
        nesting: 0,
    };
    let root = p.top_level()?;
    let mut trees = std::mem::take(&mut p.trees);
    add_tree(
        &mut trees,
        Tree {
            name: name.to_string(),
            root,
        },
        0,
    )?;
    Ok(trees)
}

/// Adds a tree to the trees of one parse with Go's rules: an empty tree never replaces a
/// non-empty one, two non-empty trees with one name are an error.
fn add_tree(trees: &mut Vec<Tree>, tree: Tree, pos: usize) -> LexResult<()> {
    match trees.iter_mut().find(|t| t.name == tree.name) {
        None => trees.push(tree),
        Some(old) if is_empty_tree(&old.root) => *old = tree,
        Some(_) if is_empty_tree(&tree.root) => {}
        Some(_) => {
            return Err(SrcError {
                pos,
                msg: format!("template: multiple definition of template {:?}", tree.name),
            });
        }
    }
    Ok(())
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    i: usize,
    vars: Vec<String>,
    range_depth: usize,
    trees: Vec<Tree>,
    nesting: usize,
}

/// What ended an item list.
enum ListEnd {
    End(usize),
    Else(usize),
    Eof(usize),
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        // The lexer always ends with Eof, and `next` never moves past it.
        self.toks
            .get(self.i)
            .or_else(|| self.toks.last())
            .unwrap_or(&EOF)
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.i < self.toks.len().saturating_sub(1) {
            self.i += 1;
        }
        t
    }

    fn err<T>(&self, pos: usize, msg: impl Into<String>) -> LexResult<T> {
        Err(SrcError {
            pos,
            msg: msg.into(),
        })
    }

    fn unexpected<T>(&self, t: &Token, context: &str) -> LexResult<T> {
        self.err(
            t.start,
            format!("unexpected {} in {context}", describe(self.src, t)),
        )
    }

    fn expect_right(&mut self, context: &str) -> LexResult<()> {
        let t = self.next();
        if t.tok == Tok::RightDelim {
            Ok(())
        } else {
            self.unexpected(&t, context)
        }
    }

    /// The top level: text, actions and `define`s until EOF.
    fn top_level(&mut self) -> LexResult<List> {
        let mut list = Vec::new();
        loop {
            if self.peek().tok == Tok::LeftDelim
                && self.toks.get(self.i + 1).map(|t| &t.tok) == Some(&Tok::Keyword(Kw::Define))
            {
                let start = self.next().start;
                self.next();
                self.definition(start)?;
                continue;
            }
            match self.item()? {
                Ok(node) => list.push(node),
                Err(ListEnd::Eof(_)) => return Ok(list),
                Err(ListEnd::End(pos)) => return self.err(pos, "unexpected {{end}}"),
                Err(ListEnd::Else(pos)) => return self.err(pos, "unexpected {{else}}"),
            }
        }
    }

    fn definition(&mut self, start: usize) -> LexResult<()> {
        let t = self.next();
        let Tok::Str(name) = t.tok.clone() else {
            return self.unexpected(&t, "define clause");
        };
        self.expect_right("define clause")?;
        let saved = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let (root, end) = self.item_list()?;
        self.vars = saved;
        match end {
            ListEnd::End(_) => {}
            ListEnd::Else(p) => return self.err(p, "unexpected {{else}} in define clause"),
            ListEnd::Eof(p) => return self.err(p, format!("unexpected EOF in define {name:?}")),
        }
        add_tree(&mut self.trees, Tree { name, root }, start)
    }

    /// Parses nodes until `{{end}}`, `{{else}}` or EOF.
    fn item_list(&mut self) -> LexResult<(List, ListEnd)> {
        let mut list = Vec::new();
        loop {
            match self.item()? {
                Ok(node) => list.push(node),
                Err(end) => return Ok((list, end)),
            }
        }
    }

    /// One text or action node, or what ends a list.
    fn item(&mut self) -> LexResult<Result<Node, ListEnd>> {
        let t = self.next();
        match t.tok {
            Tok::Text(s) => Ok(Ok(Node::Text(s))),
            Tok::Eof => Ok(Err(ListEnd::Eof(t.start))),
            Tok::LeftDelim => self.action(t.start),
            _ => self.unexpected(&t, "input"),
        }
    }

    fn action(&mut self, start: usize) -> LexResult<Result<Node, ListEnd>> {
        let kw = match self.peek().tok {
            Tok::Keyword(k) => Some(k),
            _ => None,
        };
        let Some(kw) = kw else {
            let pipe = self.pipeline("command", false)?;
            return Ok(Ok(Node::Action(pipe)));
        };
        let kt = self.next();
        match kw {
            Kw::End => {
                self.expect_right("end")?;
                Ok(Err(ListEnd::End(start)))
            }
            Kw::Else => {
                // "{{else if …}}" and "{{else with …}}" are left for the enclosing control.
                if !matches!(self.peek().tok, Tok::Keyword(Kw::If | Kw::With)) {
                    self.expect_right("else")?;
                }
                Ok(Err(ListEnd::Else(start)))
            }
            Kw::If => Ok(Ok(Node::If(self.control("if")?))),
            Kw::With => Ok(Ok(Node::With(self.control("with")?))),
            Kw::Range => Ok(Ok(Node::Range(self.control("range")?))),
            Kw::Break | Kw::Continue => {
                let word = if kw == Kw::Break { "break" } else { "continue" };
                if self.range_depth == 0 {
                    return self.err(kt.start, format!("{{{{{word}}}}} outside {{{{range}}}}"));
                }
                self.expect_right(word)?;
                Ok(Ok(if kw == Kw::Break {
                    Node::Break
                } else {
                    Node::Continue
                }))
            }
            Kw::Template => {
                let name = self.template_name("template clause")?;
                let pipe = if self.peek().tok == Tok::RightDelim {
                    self.next();
                    None
                } else {
                    Some(self.pipeline("template clause", false)?)
                };
                Ok(Ok(Node::Template {
                    pos: kt.start,
                    name,
                    pipe,
                }))
            }
            Kw::Block => {
                let name = self.template_name("block clause")?;
                let pipe = self.pipeline("block clause", false)?;
                let saved_vars = std::mem::replace(&mut self.vars, vec!["$".into()]);
                let saved_depth = std::mem::replace(&mut self.range_depth, 0);
                self.enter()?;
                let body = self.item_list();
                self.nesting -= 1;
                let (root, end) = body?;
                self.vars = saved_vars;
                self.range_depth = saved_depth;
                match end {
                    ListEnd::End(_) => {}
                    ListEnd::Else(p) => return self.err(p, "unexpected {{else}} in block clause"),
                    ListEnd::Eof(p) => return self.err(p, "unexpected EOF in block clause"),
                }
                add_tree(
                    &mut self.trees,
                    Tree {
                        name: name.clone(),
                        root,
                    },
                    kt.start,
                )?;
                Ok(Ok(Node::Template {
                    pos: kt.start,
                    name,
                    pipe: Some(pipe),
                }))
            }
            Kw::Define => self.err(
                kt.start,
                "unexpected <define> in command: define must be at top level",
            ),
        }
    }

    fn template_name(&mut self, context: &str) -> LexResult<String> {
        let t = self.next();
        match t.tok {
            Tok::Str(s) => Ok(s),
            _ => self.unexpected(&t, context),
        }
    }

    /// `if`, `with`, `range` after the keyword, up to and including `{{end}}`.
    fn control(&mut self, context: &str) -> LexResult<Control> {
        self.enter()?;
        let r = self.control_inner(context);
        self.nesting -= 1;
        r
    }

    /// Counts one level of nesting; deep nesting is an error rather than a stack overflow.
    fn enter(&mut self) -> LexResult<()> {
        if self.nesting >= MAX_NESTING {
            let pos = self.peek().start;
            return self.err(pos, format!("nesting deeper than {MAX_NESTING} levels"));
        }
        self.nesting += 1;
        Ok(())
    }

    fn control_inner(&mut self, context: &str) -> LexResult<Control> {
        let nvars = self.vars.len();
        let pipe = self.pipeline(context, false)?;
        if context == "range" {
            self.range_depth += 1;
        }
        let (list, end) = self.item_list()?;
        if context == "range" {
            self.range_depth -= 1;
        }
        let else_list = match end {
            ListEnd::End(_) => None,
            ListEnd::Eof(p) => return self.err(p, format!("unexpected EOF in {context}")),
            ListEnd::Else(p) => {
                let chained = match (context, &self.peek().tok) {
                    ("if", Tok::Keyword(Kw::If)) => Some(true),
                    ("with", Tok::Keyword(Kw::With)) => Some(false),
                    (_, Tok::Keyword(Kw::If | Kw::With)) => {
                        let t = self.peek().clone();
                        return self.unexpected(&t, "else");
                    }
                    _ => None,
                };
                match chained {
                    Some(is_if) => {
                        // "{{else if b}}…{{end}}" is "{{else}}{{if b}}…{{end}}{{end}}".
                        self.next();
                        let inner = self.control(if is_if { "if" } else { "with" })?;
                        Some(vec![if is_if {
                            Node::If(inner)
                        } else {
                            Node::With(inner)
                        }])
                    }
                    None => {
                        let (l, end) = self.item_list()?;
                        match end {
                            ListEnd::End(_) => Some(l),
                            ListEnd::Else(q) | ListEnd::Eof(q) => {
                                let _ = p;
                                return self.err(
                                    q,
                                    format!("expected end; found else or EOF in {context}"),
                                );
                            }
                        }
                    }
                }
            }
        };
        self.vars.truncate(nvars);
        Ok(Control {
            pipe,
            list,
            else_list,
        })
    }

    /// A pipeline up to `}}` (or `)` when `paren`), consuming the terminator.
    fn pipeline(&mut self, context: &str, paren: bool) -> LexResult<Pipe> {
        let pos = self.peek().start;
        let mut pipe = Pipe {
            pos,
            decl: vec![],
            is_assign: false,
            cmds: vec![],
        };
        // Declarations.
        if let Tok::Variable(v) = self.peek().tok.clone() {
            let after = self.toks.get(self.i + 1).map(|t| t.tok.clone());
            match after {
                Some(Tok::Declare | Tok::Assign) => {
                    self.next();
                    pipe.is_assign = self.next().tok == Tok::Assign;
                    pipe.decl.push(v.clone());
                    self.vars.push(v);
                }
                Some(Tok::Comma) => {
                    self.next();
                    self.next();
                    pipe.decl.push(v.clone());
                    self.vars.push(v);
                    let t = self.next();
                    let second = match (&t.tok, context) {
                        (Tok::Variable(w), "range") => w.clone(),
                        (_, "range") => {
                            return self.err(t.start, "range can only initialize variables");
                        }
                        _ => {
                            return self
                                .err(t.start, format!("too many declarations in {context}"));
                        }
                    };
                    let op = self.next();
                    match op.tok {
                        Tok::Declare => {}
                        Tok::Assign => pipe.is_assign = true,
                        _ => return self.unexpected(&op, context),
                    }
                    pipe.decl.push(second.clone());
                    self.vars.push(second);
                }
                _ => {}
            }
        }
        loop {
            let t = self.peek().clone();
            match t.tok {
                Tok::RightDelim if !paren => {
                    self.next();
                    break;
                }
                Tok::RParen if paren => {
                    self.next();
                    break;
                }
                Tok::Bool(_)
                | Tok::Char(_)
                | Tok::Dot
                | Tok::Field(_)
                | Tok::Ident(_)
                | Tok::Number(_)
                | Tok::Nil
                | Tok::Str(_)
                | Tok::Variable(_)
                | Tok::LParen => {
                    let cmd = self.command(paren)?;
                    pipe.cmds.push(cmd);
                }
                _ => return self.unexpected(&t, context),
            }
        }
        if pipe.cmds.is_empty() {
            return self.err(pos, format!("missing value for {context}"));
        }
        for (n, c) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(c.args.first(), Some(Arg::Const(_) | Arg::Dot | Arg::Nil)) {
                return self.err(
                    c.pos,
                    format!("non executable command in pipeline stage {}", n + 1),
                );
            }
        }
        Ok(pipe)
    }

    fn command(&mut self, paren: bool) -> LexResult<Command> {
        let start = self.peek().start;
        let mut args = Vec::new();
        let mut end = start;
        loop {
            let t = self.peek().clone();
            if !args.is_empty()
                && !t.space_before
                && !matches!(t.tok, Tok::RightDelim | Tok::RParen | Tok::Pipe)
            {
                return self.unexpected(&t, "operand");
            }
            match t.tok {
                Tok::RightDelim | Tok::RParen => break,
                Tok::Pipe => {
                    self.next();
                    let n = self.peek().clone();
                    if matches!(n.tok, Tok::RightDelim | Tok::RParen) {
                        return self.err(n.start, "missing command after |");
                    }
                    break;
                }
                _ => {}
            }
            let arg = self.operand()?;
            end = self
                .toks
                .get(self.i.saturating_sub(1))
                .map_or(end, |t| t.end);
            args.push(arg);
        }
        if args.is_empty() {
            return self.err(start, "empty command");
        }
        let _ = paren;
        let text = self.src.get(start..end).unwrap_or("").to_string();
        Ok(Command {
            pos: start,
            text,
            args,
        })
    }

    fn operand(&mut self) -> LexResult<Arg> {
        let term = self.term()?;
        let mut fields = Vec::new();
        while let Tok::Field(f) = &self.peek().tok {
            if self.peek().space_before {
                break;
            }
            fields.push(f.clone());
            self.next();
        }
        if fields.is_empty() {
            return Ok(term);
        }
        Ok(match term {
            Arg::Field(mut f) => {
                f.extend(fields);
                Arg::Field(f)
            }
            Arg::Variable(v, mut f) => {
                f.extend(fields);
                Arg::Variable(v, f)
            }
            Arg::Const(_) | Arg::Nil | Arg::Dot => {
                let t = self.peek().clone();
                return self.err(t.start, "unexpected . after term");
            }
            other => Arg::Chain(Box::new(other), fields),
        })
    }

    fn term(&mut self) -> LexResult<Arg> {
        let t = self.next();
        Ok(match t.tok {
            Tok::Ident(name) => {
                if !is_function(&name) {
                    return self.err(t.start, format!("function {name:?} not defined"));
                }
                Arg::Ident(name)
            }
            Tok::Dot => Arg::Dot,
            Tok::Nil => Arg::Nil,
            Tok::Variable(v) => {
                if !self.vars.contains(&v) {
                    return self.err(t.start, format!("undefined variable {v:?}"));
                }
                Arg::Variable(v, vec![])
            }
            Tok::Field(f) => Arg::Field(vec![f]),
            Tok::Bool(b) => Arg::Const(Value::Bool(b)),
            Tok::Char(c) => Arg::Const(Value::Int(c as i64)),
            Tok::Number(n) => match parse_number(&n) {
                Some(v) => Arg::Const(v),
                None => return self.err(t.start, format!("illegal number syntax: {n:?}")),
            },
            Tok::Str(s) => Arg::Const(Value::Str(s)),
            Tok::LParen => {
                self.enter()?;
                let p = self.pipeline("parenthesized pipeline", true);
                self.nesting -= 1;
                Arg::Pipe(Box::new(p?))
            }
            _ => return self.unexpected(&t, "operand"),
        })
    }
}

/// Deepest nesting of control structures and parentheses.
const MAX_NESTING: usize = 100;

static EOF: Token = Token {
    tok: Tok::Eof,
    start: 0,
    end: 0,
    space_before: false,
};

fn describe(src: &str, t: &Token) -> String {
    match &t.tok {
        Tok::Eof => "EOF".to_string(),
        Tok::RightDelim => "\"}}\"".to_string(),
        Tok::Text(_) => "text".to_string(),
        _ => format!("{:?}", src.get(t.start..t.end).unwrap_or("")),
    }
}

/// Parses a Go number literal: an integer when it has no fraction or exponent, else a float.
pub(crate) fn parse_number(text: &str) -> Option<Value> {
    let clean: String = text.chars().filter(|&c| c != '_').collect();
    let (neg, body) = match clean.strip_prefix('-') {
        Some(b) => (true, b.to_string()),
        None => (false, clean.strip_prefix('+').unwrap_or(&clean).to_string()),
    };
    let lower = body.to_ascii_lowercase();
    let int = if let Some(h) = lower.strip_prefix("0x") {
        if h.contains(['.', 'p']) {
            None
        } else {
            Some(i128::from_str_radix(h, 16).ok()?)
        }
    } else if let Some(o) = lower.strip_prefix("0o") {
        Some(i128::from_str_radix(o, 8).ok()?)
    } else if let Some(b) = lower.strip_prefix("0b") {
        Some(i128::from_str_radix(b, 2).ok()?)
    } else if lower.contains(['.', 'e']) {
        None
    } else if lower.len() > 1 && lower.starts_with('0') {
        Some(i128::from_str_radix(&lower[1..], 8).ok()?)
    } else {
        Some(lower.parse::<i128>().ok()?)
    };
    match int {
        Some(i) => {
            let i = if neg { -i } else { i };
            i64::try_from(i).ok().map(Value::Int)
        }
        None => {
            let f: f64 = if lower.starts_with("0x") {
                return None;
            } else {
                lower.parse().ok()?
            };
            Some(Value::Float(if neg { -f } else { f }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> LexResult<Vec<Tree>> {
        parse_file("t", s)
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("42"), Some(Value::Int(42)));
        assert_eq!(parse_number("-0x1f"), Some(Value::Int(-31)));
        assert_eq!(parse_number("010"), Some(Value::Int(8)));
        assert_eq!(parse_number("1_000"), Some(Value::Int(1000)));
        assert_eq!(parse_number("1.5e3"), Some(Value::Float(1500.0)));
        assert_eq!(parse_number(".5"), Some(Value::Float(0.5)));
        assert_eq!(parse_number("0b101"), Some(Value::Int(5)));
    }

    #[test]
    fn structure_errors() {
        assert!(parse("{{ if .A }}x").is_err());
        assert!(parse("{{ end }}").is_err());
        assert!(parse("{{ else }}").is_err());
        assert!(parse("{{ $x }}").is_err());
        assert!(parse("{{ nosuchfunc }}").is_err());
        assert!(parse("{{ break }}").is_err());
        assert!(parse("{{ .A | 3 }}").is_err());
        assert!(parse("{{ .A \"x\" }}").is_ok());
        assert!(parse("{{ .A\"x\" }}").is_err());
        assert!(parse("{{ if 1 }}{{ define \"x\" }}{{ end }}{{ end }}").is_err());
        assert!(parse("{{ with $x := 1 }}{{ $x }}{{ end }}{{ $x }}").is_err());
        assert!(parse("{{ range $i, $v := . }}{{ $i }}{{ $v }}{{ break }}{{ end }}").is_ok());
        assert!(parse("{{ if $a, $b := . }}{{ end }}").is_err());
        let deep = format!("{{{{ {}1{} }}}}", "(".repeat(5000), ")".repeat(5000));
        assert!(parse(&deep).unwrap_err().msg.contains("nesting deeper"));
        let deep = format!("{}{}", "{{ if 1 }}".repeat(5000), "{{ end }}".repeat(5000));
        assert!(parse(&deep).is_err());
    }

    #[test]
    fn defines_collected() {
        let trees = parse("a{{ define \"x\" }}X{{ end }}b{{ block \"y\" . }}Y{{ end }}").unwrap();
        let names: Vec<&str> = trees.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, vec!["x", "y", "t"]);
    }

    #[test]
    fn redefinition_rules_within_one_file() {
        assert!(parse("{{ define \"x\" }}A{{ end }}{{ define \"x\" }}B{{ end }}").is_err());
        let t = parse("{{ define \"x\" }}A{{ end }}{{ define \"x\" }}  {{ end }}").unwrap();
        assert!(matches!(&t[0].root[..], [Node::Text(s)] if s == "A"));
        let t = parse("{{ define \"x\" }} {{ end }}{{ define \"x\" }}B{{ end }}").unwrap();
        assert!(matches!(&t[0].root[..], [Node::Text(s)] if s == "B"));
    }
}
