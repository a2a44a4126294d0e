"""Documents for the GraphQL differential test (test_graphql_js.py): hand-written cases for
each area (tokens, grammar, validation rules, execution, variables, introspection) and a
seeded generator of valid documents over the test schema and of broken variants of them."""

import json
import random

HAND = [
    # tokens and grammar
    "{ hero { name } }",
    "query { hero { name } }",
    "query Q { hero { id } }",
    "{ hero { name } ",
    "{",
    "",
    "   # only a comment\n",
    "{ hero { name }}}",
    "{ hero { name } } extra",
    "{ echo(s: \"a\\u00e9\\uD83D\\uDE00b\") }",
    "{ echo(s: \"\\u{1F600}\\u{41}\") }",
    "{ echo(s: \"\\uD83D\") }",
    "{ echo(s: \"\\uDE00\") }",
    "{ echo(s: \"\\u{110000}\") }",
    "{ echo(s: \"\\u{}\") }",
    "{ echo(s: \"\\q\") }",
    "{ echo(s: \"unterminated) }",
    "{ echo(s: \"line\nbreak\") }",
    "{ echo(s: \"\"\"\n    block\n      indented\n    \"\"\") }",
    "{ echo(s: \"\"\"  first\n\n   second\n  third\n\n\"\"\") }",
    "{ echo(s: \"\"\"esc \\\"\"\" quote\"\"\") }",
    "{ echo(s: \"\"\"unterminated }",
    "{ echo(i: 007) }",
    "{ echo(i: 1.) }",
    "{ echo(i: .5) }",
    "{ echo(i: 1e) }",
    "{ echo(i: 1x) }",
    "{ echo(f: 1.5e3) }",
    "{ echo(f: -0.0) }",
    "{ echo(f: 1E-2) }",
    "{ echo(i: -) }",
    "{ echo(i: 12.3.4) }",
    "{ hero { .. } }",
    "{ hero ? }",
    "{ hero { name } } 'x'",
    "{ echo(s: 'x') }",
    "\u00e9",
    "{ h\u00e9ro }",
    "{ echo(s: \"\U0001F600\u00e9\") ? }",
    "{ echo(s: \"\U0001F600\") nme }",
    "query ($a: Int = $b) { echo(i: $a) }",
    "query Q($a: [[Int!]!]!) { echo(l: $a) }",
    "fragment on on Person { name }",
    "fragment F on Person { name } { hero { ...F } }",
    "{ hero { ... on Person { name } ... { id } } }",
    "{ hero { ...  } }",
    "query Q($v: Int) @skip(if: true) { hero { name } }",
    "{ alias: hero { n: name } }",
    "{ a: }",
    "subscription S { hero { name } }",
    "mutation M { hero { name } }",
    "type Foo { a: Int }",
    "\"desc\" type Foo { a: Int } { hero { name } }",
    "schema { query: Query }",
    "extend type Query { x: Int }",
    "\"desc\" query { hero { name } }",
    "{ hero { name } } { people { id } }",
    "query A { hero { name } } query A { hero { id } }",
    "query A { hero { name } } { people { id } }",
    "query A { hero { name } } query B { people { id } }",
    # fields and leafs
    "{ hero { nme } }",
    "{ hero { Name } }",
    "{ heroes { name } }",
    "{ hero }",
    "{ hero { name { first } } }",
    "{ people { friends } }",
    "{ echo { x } }",
    "{ __typename hero { __typename } }",
    # arguments
    "{ person { name } }",
    "{ person(id: \"p2\") { name } }",
    "{ person(id: 3) { name } }",
    "{ person(id: 3.5) { name } }",
    "{ person(id: \"p1\", id: \"p2\") { name } }",
    "{ person(idd: \"p1\") { name } }",
    "{ person(id: null) { name } }",
    "{ people(first: 2, role: USER) { name } }",
    "{ people(role: \"USER\") { name } }",
    "{ people(role: MANAGER) { name } }",
    "{ people(role: user) { name } }",
    "{ people(first: 2147483648) { name } }",
    "{ people(first: -2147483648) { name } }",
    "{ people(first: 1.0) { name } }",
    "{ people(first: true) { name } }",
    "{ need }",
    "{ need(req: 1) }",
    "{ need(req: 1, opt: null) }",
    "{ echo(b: 1) }",
    "{ echo(b: true, s: \"x\", i: 1, f: 2, id: 7, r: GUEST) }",
    "{ echo(id: 1.5) }",
    "{ echo(id: true) }",
    "{ echo(f: \"1\") }",
    "{ echo(s: 1) }",
    "{ echo(l: 1) }",
    "{ echo(l: [1, 2, 3]) }",
    "{ echo(l: [1, null]) }",
    "{ echo(l: [1, \"2\"]) }",
    "{ echo(ll: \"a\") }",
    "{ echo(ll: [[\"a\"], \"b\", null]) }",
    "{ echo(o: {minAmount: 1, roles: [ADMIN]}) }",
    "{ echo(o: {minAmount: 1, rolez: [ADMIN]}) }",
    "{ echo(o: {minAmount: 1, minAmount: 2}) }",
    "{ echo(o: {inner: {}}) }",
    "{ echo(o: {inner: {deep: 1, list: [{deep: 2}, {deep: null}]}}) }",
    "{ echo(o: {roles: ADMIN}) }",
    "{ echo(o: 3) }",
    "{ echo(o: [{minAmount: 1}]) }",
    "{ echo(j: {a: [1, 2.5, \"x\", null, true, ENUMISH]}) }",
    "{ echo(r: ADMIN) }",
    "{ echo(r: true) }",
    "{ echo(r: null) }",
    "{ payments(filter: {currency: \"EUR\"}) { id amount } }",
    "{ payments(filter: {minAmount: 50}, limit: 10) { id amount payer { name } } }",
    "{ payments(limit: 10) { id amount } }",
    "{ payments(limit: 10) { id status } }",
    "{ payments(limit: 10) { id payer { name } } }",
    # directives
    "{ hero @skip(if: true) { name } people(first: 1) @include(if: false) { id } }",
    "{ hero @skip(if: false) { name @include(if: true) } }",
    "{ hero @skip { name } }",
    "{ hero @skip(if: \"yes\") { name } }",
    "{ hero @unknown { name } }",
    "{ hero @skip(if: true) @skip(if: false) { name } }",
    "{ hero @deprecated { name } }",
    "query @include(if: true) { hero { name } }",
    "{ hero @skip(if: true, unless: false) { name } }",
    "query Q($s: Boolean!) { hero @skip(if: $s) { name } }",
    # fragments
    "{ hero { ...Unknown } }",
    "fragment F on Person { name } fragment F on Person { id } { hero { ...F } }",
    "fragment F on Person { name } { hero { name } }",
    "fragment F on Nope { name } { hero { ...F } }",
    "fragment F on Role { name } { hero { ...F } }",
    "fragment F on Int { name } { hero { ...F } }",
    "fragment F on Person { ...G } fragment G on Person { ...F } { hero { ...F } }",
    "fragment F on Person { ...F } { hero { ...F } }",
    "fragment F on Payment { id } { hero { ...F } }",
    "{ hero { ... on Payment { id } } }",
    "{ hero { ... on Role { id } } }",
    "{ hero { ... on Nope { id } } }",
    "fragment F on Person { name friends { ...G } } fragment G on Person { id } { hero { ...F } people(first: 2) { ...G } }",
    "{ hero { ... @include(if: false) { name } id } }",
    "{ hero { ...F @skip(if: true) id } } fragment F on Person { name }",
    # variables
    "query ($id: ID!) { person(id: $id) { name } }",
    "query ($id: ID) { person(id: $id) { name } }",
    "query ($id: String!) { person(id: $id) { name } }",
    "query ($id: ID!, $id: ID!) { person(id: $id) { name } }",
    "query ($p: Person) { hero { name } }",
    "query ($p: Nope) { hero { name } }",
    "query { person(id: $id) { name } }",
    "query Named { person(id: $id) { name } }",
    "query ($unused: Int) { hero { name } }",
    "query Named($unused: Int) { hero { name } }",
    "query ($i: Int = \"x\") { echo(i: $i) }",
    "query ($i: Int = 5) { echo(i: $i) }",
    "query ($i: Int! = 5) { echo(i: $i) }",
    "query ($l: [Int]) { echo(l: $l) }",
    "query ($l: [Int!]) { echo(l: $l) }",
    "query ($o: PaymentFilter) { echo(o: $o) }",
    "query ($r: Role = ADMIN) { echo(r: $r) }",
    "query ($d: Int) { echo(o: {inner: {deep: $d}}) }",
    "query ($f: Float) { echo(i: $f) }",
    "query ($first: Int) { people(first: $first) { id } }",
    "fragment F on Query { echo(i: $x) } query A($x: Int) { ...F } query B { ...F }",
]

# OverlappingFieldsCanBeMerged
HAND += [
    "{ hero { name: id name } }",
    "{ hero { x: name x: id x: age } }",
    "{ hero { name } ...F } fragment F on Query { hero { name: id } }",
    "{ ...F ...G } fragment F on Query { hero { name } } fragment G on Query { hero { name: tags } }",
    "{ a: people(first: 1) { id } a: people(first: 2) { id } }",
    "{ a: people(first: 1) { id } a: people(first: 1) { id } }",
    "{ people(role: USER) { id } people(role: ADMIN) { id } }",
    "query ($r: Role) { people(role: $r) { id } people(role: $r) { id } }",
    "query ($r: Role, $s: Role) { people(role: $r) { id } people(role: $s) { id } }",
    "{ x: hero { name } x: person(id: \"p1\") { name } }",
    "{ hero { x: age } hero { x: score } }",
    "{ hero { x: tags } hero { x: name } }",
    "{ hero { x: friends { id } } hero { x: bestFriend { id } } }",
    "{ hero { friends { a: id } } hero { friends { a: name } } }",
    "{ hero { friends { a: id b: age } } hero { friends { a: name b: score } } }",
    "{ echo(o: {minAmount: 1, roles: [ADMIN]}) echo(o: {roles: [ADMIN], minAmount: 1}) }",
    "{ echo(o: {minAmount: 1}) echo(o: {minAmount: 2}) }",
    "{ hero { ... on Person { name: id } name } }",
    "fragment F on Person { x: name } fragment G on Person { x: id } { hero { ...F ...G } people { ...F } }",
    "fragment F on Person { x: name ...G } fragment G on Person { x: id } { hero { ...F } }",
    "{ hero { __typename: name } }",
    "{ __typename: hero { name } }",
]

# More tokens, values and execution corners
HAND += [
    "{ echo(f: 1e400) }",
    "{ echo(f: -1e-400) }",
    "{ echo(i: -2147483649) }",
    "{ echo(i: 99999999999999999999999) }",
    "{ echo(f: 123456789012345678901234567890) }",
    "{ echo(id: 12345678901234567890) }",
    "{ echo(s: \"\"\"\"\"\") }",
    "{ echo(s: \"\"\"\\\"\"\"\"\"\") }",
    "{ echo(s: \"\\u{0000}\\u0001\") }",
    "{ echo(s: \"tab\there\") }",
    "{ echo(s: \"\\u{D800}\") }",
    "{ echo(s: \"\\u{00000041}\") }",
    "{ echo(s: \"\\u{000000041}\") }",
    "{ echo(s: \"\\uZZZZ\") }",
    "{ echo(s: \"\\u12\") }",
    "\ufeff{ hero { name } }",
    "{ hero { name } }\r\n\r\n{",
    "{\r hero\r {\r\n name } ",
    "{ hero(\n) { name } }",
    "{ hero() { name } }",
    "{ hero { name }, }",
    "{ people(first: 2) { ...on Person { id } } }",
    "{ people(first: 2) { ... on Person @include(if: false) { id } name } }",
    "query Q @skip(if: true) { hero { name } }",
    "query Q($a: Int @deprecated) { echo(i: $a) }",
    "query Q($a: Int @skip(if: true)) { echo(i: $a) }",
    "fragment F on Person @skip(if: true) { id } { hero { ...F } }",
    "{ echo(j: $undefined) }",
    "{ echo(j: {nested: {v: $v}}) }",
    "query ($v: Int) { echo(j: {nested: {v: $v}}) }",
    "query ($v: [Role!]) { echo(o: {roles: $v}) }",
    "query ($v: Role!) { echo(o: {roles: [$v]}) }",
    "query ($v: Role) { echo(o: {roles: [$v]}) }",
    "query ($v: Role) { echo(dl: [$v]) }",
    "query ($v: Inner) { echo(o: {inner: $v}) }",
    "query ($v: Inner!) { echo(o: {inner: {deep: 1, list: [$v]}}) }",
    "query ($v: Boolean = true) { hero @include(if: $v) { name } }",
    "query ($v: Boolean) { hero @include(if: $v) { name } }",
    "{ __schema { types { name kind } } __type(name: \"__Type\") { fields { name } } }",
    "{ __type(name: \"__Directive\") { fields(includeDeprecated: true) { name } } }",
    "{ __type(name: \"Role\") { enumValues(includeDeprecated: false) { name deprecationReason } } }",
    "{ __type(name: \"PaymentFilter\") { isOneOf inputFields(includeDeprecated: true) { name } } }",
    "{ __type(name: \"JSON\") { kind specifiedByURL fields { name } enumValues { name } ofType { name } } }",
    "{ __type(name: \"Person\") { kind interfaces { name } possibleTypes { name } } }",
    "{ __type(name: \"Person\") { fields(includeDeprecated: null) { name } } }",
    "{ __schema { directives { name args { name type { name kind ofType { name } } defaultValue } } } }",
    "{ __typename(x: 1) }",
    "{ __typename { a } }",
    "{ hero { __schema { queryType { name } } } }",
    "query Long" + "a" * 300 + " { hero { name } }",
    "{ " + " ".join("hero { a%d: id }" % i for i in range(100)) + " }",
    "{ " + " ".join("people(first: 2) { a%d: name }" % i for i in range(80)) + " }",
]

# Requests with variables: (query, variables)
WITH_VARS = [
    ("query ($id: ID!) { person(id: $id) { name } }", {"id": "p3"}),
    ("query ($id: ID!) { person(id: $id) { name } }", {"id": 4}),
    ("query ($id: ID!) { person(id: $id) { name } }", {"id": True}),
    ("query ($id: ID!) { person(id: $id) { name } }", {}),
    ("query ($id: ID!) { person(id: $id) { name } }", {"id": None}),
    ("query ($i: Int) { echo(i: $i) }", {"i": "a"}),
    ("query ($i: Int) { echo(i: $i) }", {"i": 1.5}),
    ("query ($i: Int) { echo(i: $i) }", {"i": 3.0}),
    ("query ($i: Int) { echo(i: $i) }", {"i": 10000000000}),
    ("query ($i: Int) { echo(i: $i) }", {"i": None}),
    ("query ($i: Int) { echo(i: $i) }", {}),
    ("query ($i: Int = 7) { echo(i: $i) }", {}),
    ("query ($i: Int = 7) { echo(i: $i) }", {"i": None}),
    ("query ($l: [Int!]) { echo(l: $l) }", {"l": [1, 2]}),
    ("query ($l: [Int!]) { echo(l: $l) }", {"l": 5}),
    ("query ($l: [Int!]) { echo(l: $l) }", {"l": [1, None]}),
    ("query ($l: [Int!]) { echo(l: $l) }", {"l": [1, "x"]}),
    ("query ($o: PaymentFilter) { echo(o: $o) }", {"o": {"minAmount": 2, "roles": ["USER"]}}),
    ("query ($o: PaymentFilter) { echo(o: $o) }", {"o": {"minAmount": 2, "rolez": 1}}),
    ("query ($o: PaymentFilter) { echo(o: $o) }", {"o": 3}),
    ("query ($o: PaymentFilter) { echo(o: $o) }", {"o": {"inner": {"list": []}}}),
    ("query ($o: PaymentFilter) { echo(o: $o) }", {"o": {"inner": {"deep": 1, "list": [{"deep": "x"}]}}}),
    ("query ($r: Role) { echo(r: $r) }", {"r": "GUEST"}),
    ("query ($r: Role) { echo(r: $r) }", {"r": "guest"}),
    ("query ($r: Role) { echo(r: $r) }", {"r": 2}),
    ("query ($s: Boolean!) { hero @skip(if: $s) { name } }", {"s": True}),
    ("query ($s: Boolean!) { hero @include(if: $s) { name } }", {"s": False}),
    ("query ($j: JSON) { echo(j: $j) }", {"j": {"deep": [1, {"x": None}]}}),
    ("query ($d: Int) { echo(o: {inner: {deep: $d}}) }", {"d": 5}),
    ("query ($f: Float) { echo(f: $f) }", {"f": 5}),
    ("query ($s: String) { echo(s: $s) }", {"s": 5}),
    ("query ($b: Boolean) { echo(b: $b) }", {"b": "true"}),
    ("query ($first: Int) { people(first: $first) { id } }", {}),
    ("query ($first: Int) { people(first: $first) { id } }", {"first": 1}),
    ("query ($v: [Role!]) { echo(o: {roles: $v}) }", {"v": ["ADMIN", None]}),
    ("query ($v: Role!) { echo(o: {roles: [$v]}) }", {"v": "USER"}),
    ("query ($v: Inner) { echo(o: {inner: $v}) }", {"v": {"deep": 2, "list": [{"deep": 3, "list": None}]}}),
    ("query ($v: Inner) { echo(o: {inner: $v}) }", {"v": {"list": [{}]}}),
    ("query ($v: Int) { echo(j: {nested: {v: $v}}) }", {"v": 9}),
    ("query ($v: Int) { echo(j: {nested: {v: $v}}) }", {}),
    ("query ($v: Boolean) { hero @include(if: $v) { name } }", {}),
    ("query ($f: Float) { echo(f: $f) }", {"f": 1.5e300}),
    ("query ($f: Float) { echo(f: $f) }", {"f": "NaN"}),
    ("query ($i: Int) { echo(i: $i) }", {"i": 2147483647}),
    ("query ($i: Int) { echo(i: $i) }", {"i": -2147483649}),
    ("query ($i: Int) { echo(i: $i) }", {"i": True}),
    ("query ($id: ID) { echo(id: $id) }", {"id": 1.0}),
    ("query ($id: ID) { echo(id: $id) }", {"id": 1.5}),
    ("query ($s: String) { echo(s: $s) }", {"s": ["a"]}),
    ("query ($ll: [[String]]) { echo(ll: $ll) }", {"ll": "x"}),
    ("query ($ll: [[String]]) { echo(ll: $ll) }", {"ll": [["a", None], None, "b"]}),
    ("query ($ll: [[String]]) { echo(ll: $ll) }", {"ll": [[1]]}),
    ("query ($o: PaymentFilter) { echo(o: $o) }", {"o": {"inner": None}}),
    ("query ($o: PaymentFilter) { echo(o: $o) }", {"o": {"roles": "ADMIN"}}),
    ("query ($o: PaymentFilter) { echo(o: $o) }", {"o": {"roles": ["ADMIN", "NOPE"]}}),
    ("query ($o: PaymentFilter) { echo(o: $o) }", {"o": []}),
    ("query ($j: JSON) { echo(j: $j) }", {"j": None}),
    ("query ($j: JSON!) { echo(j: $j) }", {"j": None}),
    ("query ($j: JSON) { echo(j: $j) }", {"j": [1, "two", 3.5]}),
]

# Execution-level behaviour: null propagation, errors with paths, lists, serialization.
EXEC = [
    "{ nonNullNull }",
    "{ nonNullNull hero { name } }",
    "{ failing hero { name } }",
    "{ hero { mustFail } }",
    "{ hero { name friends { mustFail } } }",
    "{ people(first: 5) { name bestFriend { name } } }",
    "{ numbers }",
    "{ badInt }",
    "{ payments(limit: 10) { id amount } }",
    "{ payments(limit: 10) { status } }",
    "{ hero { friends(first: 1) { name } } people(first: 2) { friends { name } } }",
    "{ a: hero { name } b: hero { id } }",
    "{ hero { name } hero { id } }",
    "{ hero { name } ... on Query { hero { id } } }",
    "{ person(id: \"nobody\") { name } }",
    "{ people(first: 5) { age score tags } }",
    "{ people(first: 0) { id } }",
    "{ __typename }",
    "{ __type(name: \"Person\") { name kind fields { name type { name kind ofType { name kind } } } } }",
    "{ __type(name: \"Nope\") { name } }",
    "{ __type(name: \"Role\") { enumValues { name isDeprecated } } }",
    "{ __type(name: \"PaymentFilter\") { inputFields { name defaultValue type { name } } } }",
    "{ __type(name: \"Query\") { fields { name args { name defaultValue } } } }",
    "{ __type(name: \"ID\") { name } }",
    "{ __schema { queryType { name } mutationType { name } subscriptionType { name } } }",
    "{ __schema { directives { name locations args { name } isRepeatable } } }",
    "{ __schema { types { name } } }",
    "{ __type { name } }",
    "{ hero { __type(name: \"Person\") { name } } }",
    "{ __schema }",
    "{ people(first: 1) { mustFail } failing }",
    "{ failing people(first: 1) { mustFail } }",
    "{ a: hero { mustFail } nonNullNull }",
    "{ nonNullNull a: hero { mustFail } }",
    "{ people(first: 3) { friends { mustFail } } }",
    "{ people(first: 3) { name bestFriend { mustFail } } }",
    "{ payments(limit: 10) { amount } }",
    "{ payments(limit: 10) { id payer { mustFail } } }",
    "{ x: payments(limit: 2) { id } y: payments(limit: 3) { id } }",
    "{ badInt failing numbers }",
    "{ hero { friends { friends { friends { name mustFail } } } } }",
]

NAMES = {
    "Query": None,
}


# Requests naming the operation: (query, operationName)
WITH_NAME = [
    ("query A { hero { id } } query B { hero { name } }", "B"),
    ("query A { hero { id } } query B { hero { name } }", "C"),
    ("query A { hero { id } } query B { hero { name } }", None),
    ("{ hero { id } }", "A"),
    ("query A { hero { id } }", "A"),
    ("query A($v: Int) { echo(i: $v) } query B { hero { name } }", "B"),
    ("mutation M { hero { name } } query Q { hero { name } }", "Q"),
    ("fragment F on Query { hero { id } } query A { ...F } query B { ...F hero { name } }", "B"),
]


def _gen_person(rng, depth):
    picks = ["id", "name", "role", "age", "score", "tags"]
    if rng.random() < 0.15:
        picks.append("mustFail")
    out = []
    for _ in range(rng.randint(1, 4)):
        f = rng.choice(picks + ["friends", "bestFriend", "__typename"] if depth < 3 else picks)
        if f == "friends":
            arg = "(first: %d)" % rng.randint(0, 3) if rng.random() < 0.5 else ""
            out.append("friends%s { %s }" % (arg, _gen_person(rng, depth + 1)))
        elif f == "bestFriend":
            out.append("bestFriend { %s }" % _gen_person(rng, depth + 1))
        else:
            alias = rng.choice(["", "", "", "x%d: " % rng.randint(0, 9)])
            out.append(alias + f)
    if rng.random() < 0.2:
        out.append("... on Person { %s }" % rng.choice(["id", "name", "role"]))
    return " ".join(out)


def _gen_query(rng):
    roots = []
    for _ in range(rng.randint(1, 3)):
        r = rng.choice(["hero", "people", "person", "payments", "echo", "numbers", "hero",
                        "people", "payments", "failing", "badInt", "nonNullNull"])
        if r == "hero":
            roots.append("hero { %s }" % _gen_person(rng, 0))
        elif r == "people":
            role = rng.choice(["", ", role: USER", ", role: ADMIN"])
            roots.append("people(first: %d%s) { %s }" % (rng.randint(0, 5), role, _gen_person(rng, 1)))
        elif r == "person":
            roots.append("person(id: \"p%d\") { %s }" % (rng.randint(1, 6), _gen_person(rng, 1)))
        elif r == "payments":
            cur = rng.choice(["", "currency: \"EUR\"", "minAmount: %d" % rng.randint(0, 100)])
            fields = " ".join(rng.sample(["id", "currency", "payer { name }", "status",
                                          "amount"], 2))
            roots.append("payments(limit: %d, filter: {%s}) { %s }" % (rng.randint(0, 6), cur, fields))
        elif r == "echo":
            roots.append("echo(i: %d, s: \"s%d\", l: [%d, %d])" % tuple(rng.randint(-9, 99) for _ in range(4)))
        else:
            roots.append(r)
    # distinct response keys at the root (repeat-free)
    seen, uniq = set(), []
    for i, r in enumerate(roots):
        key = r.split("(")[0].split(" ")[0]
        uniq.append(r if key not in seen else "k%d: %s" % (i, r))
        seen.add(key)
    return "{ %s }" % " ".join(uniq)


def _mutate(rng, doc):
    how = rng.randrange(4)
    if how == 0:
        return doc[:rng.randrange(len(doc))]
    if how == 1:
        i = rng.randrange(len(doc))
        return doc[:i] + rng.choice("{}()[]:$@!.\"#=,x1") + doc[i:]
    if how == 2:
        i = rng.randrange(len(doc))
        return doc[:i] + doc[i + 1:]
    words = ["nme", "frends", "idd", "Nope", "bestfriend", "first: \"x\""]
    return doc.replace(rng.choice(["name", "friends", "id", "Person", "bestFriend", "first: 1"]),
                       rng.choice(words), 1)


_VAR_USES = [
    ("Int", "echo(i: $v)"), ("Int!", "echo(i: $v)"), ("Float", "echo(f: $v)"),
    ("String", "echo(s: $v)"), ("Boolean!", "echo(b: $v)"), ("ID", "echo(id: $v)"),
    ("Role", "echo(r: $v)"), ("[Int!]", "echo(l: $v)"), ("[[String]]", "echo(ll: $v)"),
    ("PaymentFilter", "echo(o: $v)"), ("Inner", "echo(o: {inner: $v})"), ("JSON", "echo(j: $v)"),
    ("[Role!]!", "echo(o: {roles: $v})"), ("Int", "people(first: $v) { id }"),
    ("Boolean!", "hero @include(if: $v) { name }"),
]
_VALUES = [1, -5, 2 ** 31, 1.5, 2.0, "x", "ADMIN", "USER", True, None, [], [1, "a"], [1, 2],
           [["a"], None], {"minAmount": 1}, {"deep": 1}, {"deep": "1"}, {"x": 1},
           {"roles": ["ADMIN", "bad"], "inner": {"list": [{}]}}, {"deep": 1, "list": [{"deep": 2}]}]


def _gen_vars(rng):
    t, use = rng.choice(_VAR_USES)
    q = "query ($v: %s) { %s }" % (t, use)
    if rng.random() < 0.1:
        return {"query": q}
    return {"query": q, "variables": {"v": rng.choice(_VALUES)}}


def requests(generated=300, mutated=300, seed=16):
    """Every request of the differential test: dicts {"query", "variables"?}."""
    out = [{"query": q} for q in HAND + EXEC]
    out += [{"query": q, "variables": v} for q, v in WITH_VARS]
    out += [{"query": q, "operationName": n} for q, n in WITH_NAME]
    rng = random.Random(seed)
    valid = [_gen_query(rng) for _ in range(generated)]
    out += [{"query": q} for q in valid]
    out += [{"query": _mutate(rng, rng.choice(valid))} for _ in range(mutated)]
    out += [_gen_vars(rng) for _ in range(150)]
    return out


if __name__ == "__main__":
    for r in requests():
        print(json.dumps(r))
