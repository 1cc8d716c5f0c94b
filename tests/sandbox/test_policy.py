"""Code policy: AST checks of imports and calls, with messages that name the line."""

import pytest

from jupyter_exec_ext.sandbox import PROFILES, SAFE_MODULES, CodePolicy

SAFE = PROFILES["safe"]


def messages(policy, code):
    return [str(v) for v in policy.check(code)]


def test_safe_profile_is_the_seeds_module_list():
    assert SAFE.allowed_modules == SAFE_MODULES == frozenset(
        {"math", "random", "datetime", "collections", "itertools", "functools", "operator",
         "string", "re", "json"})


def test_allowed_modules_pass():
    code = "import math\nfrom collections import Counter\nimport re\nprint(re.compile('a'))\n"
    assert SAFE.check(code) == []


def test_forbidden_import_names_the_line_and_module():
    code = "import math\n\nimport os.path\nfrom subprocess import run\n"
    assert messages(SAFE, code) == [
        "line 3: importing 'os.path' is not allowed in this exercise (allowed modules: collections, "
        "datetime, functools, itertools, json, math, operator, random, re, string)",
        "line 4: importing 'subprocess' is not allowed in this exercise (allowed modules: collections, "
        "datetime, functools, itertools, json, math, operator, random, re, string)",
    ]


def test_forbidden_calls_match_bare_names_not_methods():
    code = "x = eval('1+1')\nimport re\nre.compile('x')\nopen('f')\n__builtins__.exec('1')\n"
    found = messages(SAFE, code)
    assert "line 1: calling 'eval()' is not allowed in this exercise" in found
    assert "line 4: calling 'open()' is not allowed in this exercise" in found
    assert "line 5: calling 'exec()' is not allowed in this exercise" in found
    assert not any("compile" in m for m in found)


def test_dunder_access_and_relative_imports():
    found = messages(SAFE, "().__class__.__bases__[0].__subclasses__()\nfrom . import x\n")
    assert "line 1: using '__subclasses__' is not allowed in this exercise" in found
    assert "line 2: relative imports are not allowed in this exercise" in found


def test_no_policy_allows_everything():
    assert PROFILES["none"].check("import os\neval('1')\n") == []


def test_syntax_errors_are_left_to_the_sandbox():
    assert SAFE.check("def f(:\n") == []


def test_from_mapping_profile_refined_by_fields():
    policy = CodePolicy.from_mapping({"profile": "safe", "forbidden_calls": ["sorted", ".sort"]})
    assert policy.allowed_modules == SAFE_MODULES
    assert messages(policy, "sorted([2, 1])\nxs = [3, 1]\nxs.sort()\neval('1')\n") == [
        "line 1: calling 'sorted()' is not allowed in this exercise",
        "line 3: calling '.sort()' is not allowed in this exercise",
        "line 4: calling 'eval()' is not allowed in this exercise",
    ]
    # Only the forbidden lists add up; an allowlist given replaces the profile's.
    narrowed = CodePolicy.from_mapping({"profile": "safe", "allowed_modules": ["math"]})
    assert narrowed.allowed_modules == {"math"} and "eval" in narrowed.forbidden_calls


@pytest.mark.parametrize("data, words", [
    ({"profile": "strict"}, "unknown policy profile 'strict'"),
    ({"allowed_modules": "math"}, "policy.allowed_modules must be a list of names"),
    ({"forbid_dunder_access": "yes"}, "policy.forbid_dunder_access must be true or false"),
    ({"colour": "red"}, "unknown policy field 'colour'"),
    (["math"], "policy must be an object"),
])
def test_from_mapping_rejects_bad_input_by_name(data, words):
    with pytest.raises(ValueError) as err:
        CodePolicy.from_mapping(data)
    assert words in str(err.value)


def test_the_package_parses_python_only_through_the_locked_helper():
    # ast.parse is not safe on several threads at once in CPython 3.11 (python/cpython#106905);
    # policies, rules and the cache run on worker threads.
    import pathlib

    import jupyter_exec_ext
    root = pathlib.Path(jupyter_exec_ext.__file__).parent
    offenders = [f"{path.relative_to(root)}:{n}" for path in root.rglob("*.py")
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if "ast.parse(" in line and path.name != "policy.py"]
    policy_lines = (root / "sandbox" / "policy.py").read_text().count("ast.parse(")
    assert offenders == [] and policy_lines == 1, (offenders, policy_lines)
