//! Executes template trees: Go's evaluation rules for pipelines, fields, variables and control.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use crate::parse::{Arg, Command, Control, List, Node, Pipe};
use crate::value::Value;
use crate::{RuntimeFuncs, TemplateError};

/// Deepest nesting of `{{template}}` calls and control structures while executing (Go allows
/// 100000 template calls; a Rust thread stack is smaller).
const MAX_DEPTH: usize = 1000;

/// A stored tree with the file and source it came from (for error positions).
#[derive(Debug)]
pub(crate) struct Stored {
    pub file: String,
    pub src: Arc<str>,
    pub root: List,
}

/// What a walk did besides printing.
enum Flow {
    Normal,
    Break,
    Continue,
}

/// Turns a byte offset into 1-based line and column (in characters).
pub(crate) fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let before = src.get(..pos.min(src.len())).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

pub(crate) struct Exec<'a> {
    pub trees: &'a HashMap<String, Arc<Stored>>,
    pub funcs: &'a dyn RuntimeFuncs,
    pub out: String,
    depth: usize,
}

/// The state of one template invocation: its tree, name and variables.
struct Frame<'a> {
    tree: &'a Stored,
    name: &'a str,
    vars: Vec<(String, Value)>,
}

type R<T> = Result<T, TemplateError>;

impl<'a> Exec<'a> {
    pub(crate) fn new(
        trees: &'a HashMap<String, Arc<Stored>>,
        funcs: &'a dyn RuntimeFuncs,
    ) -> Self {
        Exec {
            trees,
            funcs,
            out: String::new(),
            depth: 0,
        }
    }

    /// Runs template `name` with `dot`.
    pub(crate) fn run(&mut self, name: &str, dot: &Value) -> R<()> {
        let Some(tree) = self.trees.get(name).cloned() else {
            return Err(TemplateError {
                file: name.to_string(),
                line: 0,
                col: 0,
                message: format!(
                    "no template {name:?} defined; check the name of the file or define"
                ),
            });
        };
        let mut frame = Frame {
            tree: &tree,
            name,
            vars: vec![("$".into(), dot.clone())],
        };
        self.walk(&mut frame, dot, &tree.root)?;
        Ok(())
    }

    fn error(
        &self,
        frame: &Frame,
        pos: usize,
        at: Option<&str>,
        msg: impl Into<String>,
    ) -> TemplateError {
        let (line, col) = line_col(&frame.tree.src, pos);
        let msg = msg.into();
        let message = match at {
            Some(at) => format!("executing {:?} at <{at}>: {msg}", frame.name),
            None => format!("executing {:?}: {msg}", frame.name),
        };
        TemplateError {
            file: frame.tree.file.clone(),
            line,
            col,
            message,
        }
    }

    fn walk(&mut self, frame: &mut Frame, dot: &Value, list: &[Node]) -> R<Flow> {
        for node in list {
            match node {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(pipe) => {
                    let v = self.pipeline(frame, dot, pipe)?;
                    if pipe.decl.is_empty() {
                        self.out.push_str(&v.to_string());
                    }
                }
                Node::If(c) | Node::With(c) => {
                    self.enter(frame, c.pipe.pos)?;
                    let r = self.if_with(frame, dot, c, matches!(node, Node::With(_)));
                    self.depth -= 1;
                    let flow = r?;
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::Range(c) => {
                    self.enter(frame, c.pipe.pos)?;
                    let mark = frame.vars.len();
                    let r = self.range(frame, dot, c);
                    self.depth -= 1;
                    frame.vars.truncate(mark);
                    let flow = r?;
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::Template { pos, name, pipe } => {
                    let arg = match pipe {
                        Some(p) => self.pipeline(frame, dot, p)?,
                        None => Value::Nil,
                    };
                    let Some(tree) = self.trees.get(name).cloned() else {
                        let at = format!("{{{{template {name:?}}}}}");
                        return Err(self.error(
                            frame,
                            *pos,
                            Some(&at),
                            format!("template {name:?} not defined"),
                        ));
                    };
                    self.enter(frame, *pos)?;
                    let mut inner = Frame {
                        tree: &tree,
                        name,
                        vars: vec![("$".into(), arg.clone())],
                    };
                    let r = self.walk(&mut inner, &arg, &tree.root);
                    self.depth -= 1;
                    r?;
                }
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    fn enter(&mut self, frame: &Frame, pos: usize) -> R<()> {
        if self.depth >= MAX_DEPTH {
            let m = format!("exceeded maximum template depth ({MAX_DEPTH})");
            return Err(self.error(frame, pos, None, m));
        }
        self.depth += 1;
        Ok(())
    }

    fn if_with(&mut self, frame: &mut Frame, dot: &Value, c: &Control, is_with: bool) -> R<Flow> {
        let mark = frame.vars.len();
        let v = self.pipeline(frame, dot, &c.pipe);
        let flow = match v {
            Err(e) => Err(e),
            Ok(v) if v.truthy() => {
                if is_with {
                    self.walk(frame, &v, &c.list)
                } else {
                    self.walk(frame, dot, &c.list)
                }
            }
            Ok(_) => match &c.else_list {
                Some(e) => self.walk(frame, dot, e),
                None => Ok(Flow::Normal),
            },
        };
        frame.vars.truncate(mark);
        flow
    }

    fn range(&mut self, frame: &mut Frame, dot: &Value, c: &Control) -> R<Flow> {
        let v = self.pipeline(frame, dot, &c.pipe)?;
        let items: Vec<(Value, Value)> = match &v {
            Value::List(l) => l
                .iter()
                .enumerate()
                .map(|(i, x)| (Value::Int(i as i64), x.clone()))
                .collect(),
            Value::Map(m) => m
                .iter()
                .map(|(k, x)| (Value::Str(k.clone()), x.clone()))
                .collect(),
            Value::Int(n) => (0..*n).map(|i| (Value::Int(i), Value::Int(i))).collect(),
            Value::Nil => Vec::new(),
            other => {
                let at = c.pipe.cmds.last().map(|c| c.text.as_str());
                return Err(self.error(
                    frame,
                    c.pipe.pos,
                    at,
                    format!("range can't iterate over {}", other),
                ));
            }
        };
        if items.is_empty() {
            if let Some(e) = &c.else_list {
                return self.walk(frame, dot, e);
            }
            return Ok(Flow::Normal);
        }
        let decl = &c.pipe.decl;
        for (index, elem) in items {
            let mark = frame.vars.len();
            match (decl.len(), c.pipe.is_assign) {
                (1, false) => set_top(frame, 1, elem.clone()),
                (1, true) => self.set_var(frame, c.pipe.pos, &decl[0], elem.clone())?,
                (2, false) => {
                    set_top(frame, 1, elem.clone());
                    set_top(frame, 2, index);
                }
                (2, true) => {
                    self.set_var(frame, c.pipe.pos, &decl[0], index)?;
                    self.set_var(frame, c.pipe.pos, &decl[1], elem.clone())?;
                }
                _ => {}
            }
            let flow = self.walk(frame, &elem, &c.list)?;
            frame.vars.truncate(mark);
            if matches!(flow, Flow::Break) {
                break;
            }
        }
        Ok(Flow::Normal)
    }

    fn set_var(&self, frame: &mut Frame, pos: usize, name: &str, v: Value) -> R<()> {
        match frame.vars.iter_mut().rev().find(|(n, _)| n == name) {
            Some(slot) => {
                slot.1 = v;
                Ok(())
            }
            None => Err(self.error(
                frame,
                pos,
                Some(name),
                format!("undefined variable: {name}"),
            )),
        }
    }

    fn pipeline(&mut self, frame: &mut Frame, dot: &Value, pipe: &Pipe) -> R<Value> {
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            value = Some(self.command(frame, dot, cmd, value)?);
        }
        let v = value.unwrap_or(Value::Nil);
        for name in &pipe.decl {
            if pipe.is_assign {
                self.set_var(frame, pipe.pos, name, v.clone())?;
            } else {
                frame.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn command(
        &mut self,
        frame: &mut Frame,
        dot: &Value,
        cmd: &Command,
        fin: Option<Value>,
    ) -> R<Value> {
        let rest = cmd.args.get(1..).unwrap_or(&[]);
        let has_args = !rest.is_empty() || fin.is_some();
        let wrap = |s: &Self, frame: &Frame, m: String| s.error(frame, cmd.pos, Some(&cmd.text), m);
        match cmd.args.first() {
            Some(Arg::Field(names)) => self.chain(frame, dot, Base::Dot, names, cmd, rest, fin),
            Some(Arg::Variable(name, names)) => {
                if names.is_empty() {
                    if has_args {
                        let m = format!("can't give argument to non-function {name}");
                        return Err(wrap(self, frame, m));
                    }
                    return self.var(frame, cmd, name);
                }
                self.chain(frame, dot, Base::Var(name), names, cmd, rest, fin)
            }
            Some(Arg::Chain(inner, names)) => {
                let v = self.arg(frame, dot, cmd, inner)?;
                self.chain(frame, dot, Base::Value(v), names, cmd, rest, fin)
            }
            Some(Arg::Ident(name)) => self.function(frame, dot, cmd, name, rest, fin),
            Some(Arg::Pipe(p)) => {
                if has_args {
                    return Err(wrap(
                        self,
                        frame,
                        "can't give argument to non-function (pipeline)".into(),
                    ));
                }
                self.pipeline(frame, dot, p)
            }
            Some(Arg::Nil) => Err(wrap(self, frame, "nil is not a command".into())),
            Some(Arg::Dot) => {
                if has_args {
                    return Err(wrap(
                        self,
                        frame,
                        "can't give argument to non-function .".into(),
                    ));
                }
                Ok(dot.clone())
            }
            Some(Arg::Const(v)) => {
                if has_args {
                    return Err(wrap(
                        self,
                        frame,
                        format!("can't give argument to non-function {}", cmd.text),
                    ));
                }
                Ok(v.clone())
            }
            None => Err(wrap(self, frame, "empty command".into())),
        }
    }

    fn var(&self, frame: &Frame, cmd: &Command, name: &str) -> R<Value> {
        frame
            .vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| {
                self.error(
                    frame,
                    cmd.pos,
                    Some(name),
                    format!("undefined variable: {name}"),
                )
            })
    }

    /// Evaluates `.A.B.C` on a base value; the last name gets the command's arguments (only
    /// time methods take arguments). Maps are walked by reference; only the result is cloned.
    #[allow(clippy::too_many_arguments)]
    fn chain(
        &mut self,
        frame: &mut Frame,
        dot: &Value,
        base: Base,
        names: &[String],
        cmd: &Command,
        args: &[Arg],
        fin: Option<Value>,
    ) -> R<Value> {
        let has_args = !args.is_empty() || fin.is_some();
        let mut vals = Vec::with_capacity(args.len() + 1);
        for a in args {
            vals.push(self.arg(frame, dot, cmd, a)?);
        }
        if let Some(f) = fin {
            vals.push(f);
        }
        let recv: &Value = match &base {
            Base::Dot => dot,
            Base::Var(name) => match frame.vars.iter().rev().find(|(n, _)| n == name) {
                Some((_, v)) => v,
                None => {
                    let m = format!("undefined variable: {name}");
                    return Err(self.error(frame, cmd.pos, Some(name), m));
                }
            },
            Base::Value(v) => v,
        };
        resolve(recv, names, has_args, &vals)
            .map_err(|m| self.error(frame, cmd.pos, Some(&cmd.text), m))
    }

    /// Evaluates one argument.
    fn arg(&mut self, frame: &mut Frame, dot: &Value, cmd: &Command, a: &Arg) -> R<Value> {
        match a {
            Arg::Dot => Ok(dot.clone()),
            Arg::Nil => Ok(Value::Nil),
            Arg::Const(v) => Ok(v.clone()),
            Arg::Field(names) => self.chain(frame, dot, Base::Dot, names, cmd, &[], None),
            Arg::Variable(name, names) if names.is_empty() => self.var(frame, cmd, name),
            Arg::Variable(name, names) => {
                self.chain(frame, dot, Base::Var(name), names, cmd, &[], None)
            }
            Arg::Chain(inner, names) => {
                let v = self.arg(frame, dot, cmd, inner)?;
                self.chain(frame, dot, Base::Value(v), names, cmd, &[], None)
            }
            Arg::Pipe(p) => self.pipeline(frame, dot, p),
            Arg::Ident(name) => self.function(frame, dot, cmd, name, &[], None),
        }
    }

    fn function(
        &mut self,
        frame: &mut Frame,
        dot: &Value,
        cmd: &Command,
        name: &str,
        args: &[Arg],
        fin: Option<Value>,
    ) -> R<Value> {
        if name == "and" || name == "or" {
            if args.is_empty() && fin.is_none() {
                let m = format!("wrong number of args for {name}: want at least 1 got 0");
                return Err(self.error(frame, cmd.pos, Some(&cmd.text), m));
            }
            let want = name == "or";
            let mut last = Value::Nil;
            for a in args {
                last = self.arg(frame, dot, cmd, a)?;
                if last.truthy() == want {
                    return Ok(last);
                }
            }
            if let Some(f) = fin {
                last = f;
            }
            return Ok(last);
        }
        let mut vals = Vec::with_capacity(args.len() + 1);
        for a in args {
            vals.push(self.arg(frame, dot, cmd, a)?);
        }
        if let Some(f) = fin {
            vals.push(f);
        }
        let at = if cmd.args.len() == 1
            || matches!(cmd.args.first(), Some(Arg::Ident(n)) if n == name)
        {
            name.to_string()
        } else {
            cmd.text.clone()
        };
        crate::funcs::call(name, &vals, self.funcs)
            .map_err(|m| self.error(frame, cmd.pos, Some(&at), m))
    }
}

/// Where a field chain starts.
enum Base<'n> {
    Dot,
    Var(&'n str),
    Value(Value),
}

/// Walks `names` from `recv`: map keys (missing = Nil), Nil stays Nil, time methods get `args`
/// on the last name.
fn resolve(
    recv: &Value,
    names: &[String],
    has_args: bool,
    args: &[Value],
) -> Result<Value, String> {
    let mut cur: Cow<'_, Value> = Cow::Borrowed(recv);
    let n = names.len();
    for (i, name) in names.iter().enumerate() {
        let (ha, a) = if i + 1 == n {
            (has_args, args)
        } else {
            (false, &[][..])
        };
        cur = match cur {
            Cow::Borrowed(v) => field(v, name, ha, a)?,
            Cow::Owned(v) => Cow::Owned(field(&v, name, ha, a)?.into_owned()),
        };
    }
    Ok(cur.into_owned())
}

fn field<'v>(
    recv: &'v Value,
    name: &str,
    has_args: bool,
    args: &[Value],
) -> Result<Cow<'v, Value>, String> {
    match recv {
        Value::Nil => Ok(Cow::Owned(Value::Nil)),
        Value::Map(m) => {
            if has_args {
                return Err(format!("{name} is not a method but has arguments"));
            }
            Ok(m.get(name).map_or(Cow::Owned(Value::Nil), Cow::Borrowed))
        }
        Value::Time(t) => crate::timefmt::call_method(t, name, args).map(Cow::Owned),
        other => Err(format!(
            "can't evaluate field {name} in type {}",
            other.type_name()
        )),
    }
}

/// Sets the variable `n` places from the top of the stack (1 = top).
fn set_top(frame: &mut Frame, n: usize, v: Value) {
    let len = frame.vars.len();
    if let Some(slot) = len.checked_sub(n).and_then(|i| frame.vars.get_mut(i)) {
        slot.1 = v;
    }
}
