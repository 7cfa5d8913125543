"""Which cache an app's result goes to (issue 14, "one computation, one cache entry").

``def main(exp: Experiment): return exp.train()`` with ``@infra.apply`` on ``train`` used to
store each result twice: under the app (``app.main,0/<uid>``) and under the method
(``models.Experiment.train,0/<uid>``).  Read from the task's source when the app starts:

* the task is exactly ``return <config>.<method>()`` for an ``@infra.apply`` method of its
  model: the app *is* that method (as ``exca_hydra.main(...)(Experiment.train)``): one entry,
  the method's, shared with ``exp.train()`` from Python; the exca sweeper skips cached jobs;
* the task calls such a method among other code (``r = exp.train(); log(r); return r``): the
  app does not cache its own return value; the method's entry is the only one, and every job
  runs (reading the method's cache);
* otherwise (the task does not call the model's cached methods, or its source is unavailable):
  the app caches its return value under ``<module>.<function>,<version>/<uid>``, as before.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import typing as tp


def cached_methods(model: type) -> set[str]:
    """Names of the model's ``@infra.apply`` methods."""
    infras = getattr(model, "__exca_infras__", None) or {}
    names = {method.__name__ for method, _ in infras.values()}
    return {name for name in names if hasattr(getattr(model, name, None), "__exca_method__")}


def infra_calls(function: tp.Callable[..., tp.Any], model: type) -> tuple[str | None, bool]:
    """(the method ``function`` is exactly ``return cfg.method()`` of, whether it calls one
    of the model's ``@infra.apply`` methods on its config parameter)."""
    methods = cached_methods(model)
    if not methods or hasattr(function, "__exca_method__"):
        return None, False
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError):
        return None, False
    node = tree.body[0] if tree.body else None
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or not node.args.args:
        return None, False
    param = node.args.args[0].arg

    def method_call(expr: ast.AST) -> str | None:
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute):
            target = expr.func.value
            if isinstance(target, ast.Name) and target.id == param and expr.func.attr in methods:
                return expr.func.attr
        return None

    calls = any(method_call(expr) for expr in ast.walk(node))
    body = list(node.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
        body = body[1:]  # the docstring
    if len(body) == 1 and isinstance(body[0], ast.Return) and body[0].value is not None:
        call = body[0].value
        name = method_call(call)
        if name is not None and isinstance(call, ast.Call) and not call.args and not call.keywords:
            return name, True
    return None, calls
