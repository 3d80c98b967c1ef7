"""Reads a crate as scripts/imports sees it: the module tree from `mod` declarations, every
`use` and every path written in code, each resolved to the file it leads to.

scripts/imports's header says how paths become files (re-exports, test code); this file
does it. Standard library only."""

import bisect
import os
import re

# ---------------------------------------------------------------------------- lexing

TOKEN = re.compile(
    r"""
    \s*(?:
    (?P<line_comment>//[^\n]*)
  | (?P<block_comment>/\*)
  | (?P<raw_string>b?r\#*")
  | (?P<string>[bc]?"(?:\\.|[^"\\])*")
  | (?P<char>b?'(?:\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F_]*\}|.)|[^\\'\n])')
  | (?P<lifetime>'[A-Za-z_][A-Za-z0-9_]*)
  | (?P<ident>(?:r\#)?[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>[0-9][0-9A-Za-z_]*(?:\.[0-9][0-9A-Za-z_]*)?)
  | (?P<p>::|.)
    )""",
    re.VERBOSE | re.DOTALL,
)
NEWLINE = re.compile("\n")


class Tok:
    __slots__ = ("kind", "text", "line")

    def __init__(self, kind, text, line):
        self.kind, self.text, self.line = kind, text, line


def lex(text):
    """Rust source to tokens (identifiers, `::`, strings, punctuation); comments dropped.

    Nested block comments and raw strings are scanned by hand, the rest by one regex."""
    starts = [m.end() for m in NEWLINE.finditer(text)]
    tokens, pos, end = [], 0, len(text)
    while pos < end:
        for m in TOKEN.finditer(text, pos):
            kind = m.lastgroup
            at = m.start(kind)
            if kind == "line_comment":
                continue
            line = bisect.bisect_right(starts, at) + 1
            if kind == "block_comment":
                depth, i = 1, at + 2
                while depth and i < end:
                    opening, closing = text.find("/*", i), text.find("*/", i)
                    if closing < 0:
                        i = end
                        break
                    if 0 <= opening < closing:
                        depth, i = depth + 1, opening + 2
                    else:
                        depth, i = depth - 1, closing + 2
                pos = i
                break
            if kind == "raw_string":
                close = '"' + "#" * m.group(kind).count("#")
                i = text.find(close, m.end())
                i = end if i < 0 else i
                tokens.append(Tok("str", text[m.end() : i], line))
                pos = min(end, i + len(close))
                break
            word = m.group(kind)
            if kind == "ident":
                tokens.append(Tok("ident", word[2:] if word.startswith("r#") else word, line))
            elif kind == "p":
                tokens.append(Tok("p", word, line))
            elif kind == "string":
                tokens.append(Tok("str", word[word.index('"') + 1 : -1], line))
            else:
                tokens.append(Tok("lit", word, line))
        else:
            pos = end
    return tokens


# ---------------------------------------------------------------------------- modules


class Unreadable(Exception):
    """The tree has no crate to read."""


class Module:
    """One module: a file's own, or an inline `mod x { .. }` block inside one."""

    def __init__(self, crate, path, file, parent, test, dir_for_children):
        self.crate = crate  # the root Module of its crate
        self.path = path  # ("config", "layers"); () for a crate root
        self.file = file  # relative to the tree's root, e.g. "src/config/layers.rs"
        self.parent = parent
        self.test = test
        self.dir = dir_for_children  # where `mod x;` inside it looks for x.rs / x/mod.rs
        self.children = {}
        self.defined = set()  # items defined here (fn, struct, const, ...)
        self.bindings = {}  # name -> Use (what `use` brings into scope here)
        self.globs = []  # Use entries ending in `*`
        self.inline = False  # an inline `mod x { .. }` (its `#[path]`s resolve from .dir)

    def name(self):
        """As LAYERS writes it: `config::layers`, `crate` (lib.rs), `main` (the binary)."""
        if self.crate.path == ("<bin>",):
            return "main" if not self.path[1:] else "main::" + "::".join(self.path[1:])
        return "::".join(self.path) if self.path else "crate"


class Use:
    """One leaf of a `use` tree: `segments` as written, in module `scope`."""

    __slots__ = ("segments", "scope", "line", "test", "glob")

    def __init__(self, segments, scope, line, test, glob):
        self.segments, self.scope, self.line = segments, scope, line
        self.test, self.glob = test, glob


# What a name in a module's scope is when its `use` leads out of the crate.
EXTERNAL = ("external", None)

# Words between an item's attributes and its keyword.
QUALIFIERS = {"unsafe", "async", "extern", "default"}
ITEM_KEYWORDS = {"fn", "struct", "enum", "union", "trait", "type", "const", "static"}
# Items that end at their body's closing brace (or at `;` when they have none).
BRACED_ITEMS = {"fn", "mod", "impl", "trait", "struct", "enum", "union", "macro_rules"}


def is_cfg_test(attr):
    """`cfg(test)` or `cfg(all(.., test, ..))` (not `cfg(not(test))`, not `cfg(any(..))`)."""
    words = [t.text for t in attr]
    if words[:2] != ["cfg", "("]:
        return False
    if words[2:4] == ["test", ")"]:
        return True
    if words[2:4] == ["all", "("]:
        depth = 0
        for w in words[4:]:
            if w == "(":
                depth += 1
            elif w == ")":
                depth -= 1
            elif w == "test" and depth == 0:
                return True
    return False


def path_attr(attr):
    """The file a `#[path = "..."]` attribute names, else None."""
    words = [t.text for t in attr]
    if len(words) == 3 and words[0] == "path" and words[1] == "=" and attr[2].kind == "str":
        return words[2]
    return None


class Tree:
    """The crates under one root, their modules, and every import found in them."""

    def __init__(self, root):
        self.root = root
        self.modules = []
        self.by_file = {}  # file -> its file-level Module
        self.uses = []  # Use
        self.paths = []  # Use (paths written in code; never globs)
        self.problems = []
        self.crate_name = crate_name(root)
        self.lib = None
        roots = []
        src = os.path.join(root, "src")
        if os.path.isfile(os.path.join(src, "lib.rs")):
            roots.append(("lib", "src/lib.rs"))
        if os.path.isfile(os.path.join(src, "main.rs")):
            roots.append(("bin", "src/main.rs"))
        bindir = os.path.join(src, "bin")
        if os.path.isdir(bindir):
            for name in sorted(os.listdir(bindir)):
                if name.endswith(".rs"):
                    roots.append(("bin", "src/bin/" + name))
        if not roots:
            raise Unreadable(f"no src/lib.rs or src/main.rs under {root}")
        for kind, file in roots:
            path = () if kind == "lib" else ("<bin>",)
            top = Module(None, path, file, None, False, os.path.dirname(file))
            top.crate = top
            if kind == "lib":
                self.lib = top
            self.load_file(top)
        self.unreached()

    def rel(self, path):
        """A path as the problems print it: from the tree's root, with `/`."""
        return os.path.relpath(path, self.root).replace(os.sep, "/")

    def load_file(self, module):
        self.modules.append(module)
        self.by_file[module.file] = module
        with open(os.path.join(self.root, module.file), encoding="utf-8") as f:
            tokens = lex(f.read())
        self.parse(module, tokens)

    def child_file(self, parent, name, given_path, line):
        """The file of `mod name;` declared in `parent` (a file's or an inline module)."""
        if given_path is not None:
            base = parent.dir if parent.inline else os.path.dirname(parent.file)
            candidates = [os.path.normpath(os.path.join(base, given_path))]
        else:
            candidates = [
                os.path.join(parent.dir, name + ".rs"),
                os.path.join(parent.dir, name, "mod.rs"),
            ]
        found = [c for c in candidates if os.path.isfile(os.path.join(self.root, c))]
        if len(found) != 1:
            what = "no file" if not found else "two files"
            self.problems.append(
                f"module: {parent.file}:{line}: `mod {name};` has {what} "
                f"({' or '.join(candidates)}); keep exactly one"
            )
            return None
        return found[0].replace(os.sep, "/")

    def parse(self, file_module, toks):
        """Reads one file's tokens into `file_module` (and the modules it declares)."""
        FileParser(self, file_module, toks).run()

    def unreached(self):
        """Every .rs file under src/ that no crate reaches is a problem: it goes unchecked."""
        seen = {m.file for m in self.modules}
        for dirpath, _, names in os.walk(os.path.join(self.root, "src")):
            for name in sorted(names):
                file = self.rel(os.path.join(dirpath, name))
                if name.endswith(".rs") and file not in seen:
                    self.problems.append(
                        f"module: {file} is in no crate (no `mod` declares it); "
                        "declare it or remove it"
                    )

    # ---- resolution

    def resolve(self, scope, segments, origin=None, seen=None):
        """Where a path written in `scope` leads, for code in `origin` (scope unless a
        re-export is being followed): ("item", file), ("module", Module), or None when
        the path leads out of the crate."""
        origin = scope if origin is None else origin
        seen = set() if seen is None else seen
        first = segments[0]
        rest = segments[1:]
        if first == "crate":
            mod = scope.crate
        elif first == "super":
            mod = scope.parent
        elif first == "self":
            mod = scope
        elif first == self.crate_name and scope.crate is not self.lib and self.lib:
            mod = self.lib
        else:
            found = self.lookup(scope, first, origin, seen)
            if found is None or found is EXTERNAL:
                return None  # std, another crate, a generic parameter, `Self`
            kind, value = found
            if kind == "item":
                return found
            mod = value
        while mod is not None and rest:
            name = rest[0]
            if name == "super":
                mod, rest = mod.parent, rest[1:]
                continue
            if name == "self":
                rest = rest[1:]
                continue
            found = self.lookup(mod, name, origin, seen)
            if found is EXTERNAL:
                return None
            if found is None:
                # Unknown here (made by a macro, say): the module's own file has it.
                return ("item", mod.file)
            kind, value = found
            if kind == "item":
                return found
            mod, rest = value, rest[1:]
        if mod is None:
            return None
        return ("module", mod)

    def lookup(self, mod, name, origin, seen):
        """A name in one module's scope: its child module, own item, import, or glob.

        An item that `mod` imports (`pub use`) is followed to its definition when
        `origin` is `mod` or inside it; from outside, it is `mod`'s file: the module's
        front door is what outside code names."""
        if name in mod.children:
            return ("module", mod.children[name])
        if name in mod.defined:
            return ("item", mod.file)
        inside = within(origin, mod)
        u = mod.bindings.get(name)
        if u is not None and id(u) not in seen:
            seen.add(id(u))
            try:
                found = self.resolve(u.scope, u.segments, origin, seen) or EXTERNAL
            finally:
                seen.discard(id(u))
            if found[0] == "item" and not inside:
                return ("item", mod.file)
            return found
        for g in mod.globs:
            if id(g) in seen:
                continue
            seen.add(id(g))
            try:
                target = self.resolve(g.scope, g.segments, origin, seen)
                if target and target[0] == "module":
                    found = self.lookup(target[1], name, origin, seen)
                    if found is not None and found is not EXTERNAL:
                        if found[0] == "item" and not inside:
                            return ("item", mod.file)
                        return found
            finally:
                seen.discard(id(g))
        return None

    def edges(self):
        """(from file, to file, line, what, test) for every import that leads to a file."""
        out = []
        for u in self.uses + self.paths:
            target = self.resolve(u.scope, u.segments)
            if target is None:
                continue
            kind, value = target
            if kind == "module":
                if not u.glob:
                    continue  # a module imported by name: its uses are the edges
                file = value.file
            else:
                file = value
            if file == u.scope.file:
                continue
            what = "::".join(u.segments) + ("::*" if u.glob else "")
            test = u.test or self.by_file[u.scope.file].test
            out.append((u.scope.file, file, u.line, what, test))
        return out



class FileParser:
    """One pass over a file's tokens: its `mod` declarations (loaded as they come), its
    items, its `use` trees and the paths written in its code, each marked test or not."""

    def __init__(self, tree, file_module, toks):
        self.tree, self.file_module, self.toks = tree, file_module, toks
        self.stack = []  # per open `{`: (the inline module it opens, or None; test)
        self.attrs = []  # attributes waiting for their item
        self.item_test_end = None  # in a test item that ends at `;` at this depth
        self.pending_brace_test = False  # the next `{` opens a test item's body

    def current(self):
        """The module the parser is in: the innermost inline module, else the file's."""
        for mod, _ in reversed(self.stack):
            if mod is not None:
                return mod
        return self.file_module

    def in_test(self):
        return (
            self.file_module.test
            or self.item_test_end is not None
            or any(test for _, test in self.stack)
        )

    def item_ended(self):
        """A `mod x;`, `use ..;` or other item ended at this depth."""
        if self.item_test_end == len(self.stack):
            self.item_test_end = None
        self.pending_brace_test = False
        self.attrs = []

    def run(self):
        toks, n, i = self.toks, len(self.toks), 0
        while i < n:
            t = toks[i]
            if t.kind == "p":
                i = self.punct(i)
                continue
            if t.kind != "ident":
                i += 1
                continue
            # An item's start: visibility, then a keyword.
            j = i
            if t.text == "pub":
                j += 1
                if j < n and toks[j].text == "(":
                    while j < n and toks[j].text != ")":
                        j += 1
                    j += 1
            kw = toks[j].text if j < n else ""
            name = toks[j + 1] if j + 1 < n and toks[j + 1].kind == "ident" else None
            test_item = any(is_cfg_test(a) for a in self.attrs)
            is_item = kw == "use" or kw in ITEM_KEYWORDS or kw in BRACED_ITEMS
            if test_item and is_item and not self.in_test():
                self.item_test_end = len(self.stack)
            if kw in BRACED_ITEMS and self.item_test_end == len(self.stack):
                # A test fn, impl, mod ..: ends at its body's `}` (its `{` is marked) or `;`.
                self.pending_brace_test = True
            after = toks[j + 2].text if j + 2 < n else ""
            if kw == "mod" and name and after in (";", "{"):
                self.declare_mod(name.text, after, test_item, t.line)
                i = j + 3
                continue
            if kw == "use":
                i = self.use(j + 1, t.line)
                continue
            at_module_level = not self.stack or self.stack[-1][0] is not None
            if kw in ITEM_KEYWORDS and name and at_module_level:
                self.current().defined.add(name.text)
            if j != i:
                i = j  # past `pub(..)`: on from the keyword, its attributes kept
                continue
            if kw not in ITEM_KEYWORDS and kw not in BRACED_ITEMS and kw not in QUALIFIERS:
                self.attrs = []
            i = self.path(i)

    def punct(self, i):
        """An attribute, a brace or a `;`: returns where to go on."""
        toks, text = self.toks, self.toks[i].text
        if text == "#":
            inner = i + 1 < len(toks) and toks[i + 1].text == "!"
            j = i + 2 if inner else i + 1
            if j < len(toks) and toks[j].text == "[":
                depth, k = 0, j
                while k < len(toks):
                    if toks[k].text == "[":
                        depth += 1
                    elif toks[k].text == "]":
                        depth -= 1
                        if depth == 0:
                            break
                    k += 1
                attr = toks[j + 1 : k]
                if not inner:
                    self.attrs.append(attr)
                elif is_cfg_test(attr) and not self.stack:
                    self.file_module.test = True  # `#![cfg(test)]`: the whole file
                return k + 1
        elif text == "{":
            test = self.pending_brace_test
            if test:
                self.item_test_end = None  # the brace marks the test item's body
            self.pending_brace_test = False
            self.stack.append((None, test))
            self.attrs = []
        elif text == "}":
            if self.stack:
                self.stack.pop()
            self.attrs = []
        elif text == ";":
            self.item_ended()
        return i + 1

    def declare_mod(self, name, after, test_item, line):
        """`mod name;` (its file loaded now) or `mod name {` (an inline module opens)."""
        parent = self.current()
        given = None
        for a in self.attrs:
            given = path_attr(a) or given
        test = parent.test or self.in_test() or test_item
        if after == ";":
            file = self.tree.child_file(parent, name, given, line)
            if file is not None:
                mod_rs = os.path.basename(file) == "mod.rs"
                below = os.path.dirname(file) if mod_rs else os.path.splitext(file)[0]
                child = Module(parent.crate, parent.path + (name,), file, parent, test, below)
                parent.children[name] = child
                self.tree.load_file(child)
            self.item_ended()
            return
        below = os.path.join(parent.dir, name)
        child = Module(parent.crate, parent.path + (name,), parent.file, parent, test, below)
        child.inline = True
        parent.children[name] = child
        self.tree.modules.append(child)
        self.item_ended()
        self.stack.append((child, test))

    def use(self, k, line):
        """A `use` tree from token k: each leaf recorded, and bound in the module's scope
        (a `use` inside a fn body too; the module's first binding of a name wins)."""
        end = k
        while end < len(self.toks) and self.toks[end].text != ";":
            end += 1
        scope = self.current()
        test = scope.test or self.in_test()
        for segments, alias, glob in use_tree(self.toks[k:end]):
            if not segments:
                continue
            u = Use(segments, scope, line, test, glob)
            self.tree.uses.append(u)
            if glob:
                scope.globs.append(u)
            elif (alias or segments[-1]) != "_":
                scope.bindings.setdefault(alias or segments[-1], u)
        self.item_ended()
        return end + 1

    def path(self, i):
        """A path written in code, `ident (:: ident)+` not preceded by `::`, from token i."""
        toks, n = self.toks, len(self.toks)
        prev = toks[i - 1].text if i else ""
        if prev == "::" or i + 2 >= n or toks[i + 1].text != "::" or toks[i + 2].kind != "ident":
            return i + 1
        segments, k = [toks[i].text], i + 1
        while k + 1 < n and toks[k].text == "::" and toks[k + 1].kind == "ident":
            segments.append(toks[k + 1].text)
            k += 2
        scope = self.current()
        test = scope.test or self.in_test()
        self.tree.paths.append(Use(segments, scope, toks[i].line, test, False))
        return k


def within(inner, outer):
    """Whether module `inner` is `outer` or one of its descendants."""
    return inner.crate is outer.crate and inner.path[: len(outer.path)] == outer.path


def use_tree(toks):
    """A `use` tree's leaves: (segments, alias, glob) for `a::{b, c::{self, d as e}, f::*}`."""
    out = []
    i = 0
    if i < len(toks) and toks[i].text == "::":
        i += 1

    def tree(i, prefix):
        segs = list(prefix)
        while i < len(toks):
            t = toks[i]
            if t.text == "{":
                i += 1
                while i < len(toks) and toks[i].text != "}":
                    i = tree(i, segs)
                    if i < len(toks) and toks[i].text == ",":
                        i += 1
                return i + 1
            if t.text == "*":
                out.append((segs, None, True))
                return i + 1
            if t.kind == "ident":
                last = i + 1 >= len(toks) or toks[i + 1].text in (",", "}", "as")
                if not (t.text == "self" and segs and last):  # `{self}`: the prefix itself
                    segs = segs + [t.text]
                i += 1
                if i < len(toks) and toks[i].text == "::":
                    i += 1
                    continue
                alias = None
                if i + 1 < len(toks) and toks[i].text == "as":
                    alias = toks[i + 1].text
                    i += 2
                out.append((segs, alias, False))
                return i
            i += 1
        return i

    while i < len(toks):
        i = tree(i, [])
        if i < len(toks) and toks[i].text == ",":
            i += 1
    return out


def crate_name(root):
    """The library's name as the binary writes it (`s3credsfs::..`)."""
    try:
        with open(os.path.join(root, "Cargo.toml"), encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None
    section, names = None, {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]").strip()
            continue
        m = re.match(r'name\s*=\s*"([^"]+)"', line)
        if m and section in ("package", "lib"):
            names[section] = m.group(1)
    name = names.get("lib") or names.get("package")
    return name.replace("-", "_") if name else None
