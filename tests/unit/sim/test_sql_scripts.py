"""The Personify360 activity-code scripts: valid T-SQL, idempotent, the same rows as the SQLite form and
the console's default mapping, and a rollback that removes exactly what the script adds."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

import writeback_console
from writeback_console.personify.mapping import DEFAULT_ACTIVITY_CODES, DEFAULT_SUBCODES
from writeback_console.sim.store import SCHEMA

SQL_DIR = Path(writeback_console.__file__).resolve().parent.parent / "sql" / "personify360"
SCRIPT = SQL_DIR / "informz_activity_codes.sql"
ROLLBACK = SQL_DIR / "informz_activity_codes_rollback.sql"
SQLITE_SCRIPT = SQL_DIR / "informz_activity_codes.sqlite.sql"

#: The row marker the rollback relies on to touch only rows the script added.
SETUP_OPER = "INFORMZ_SETUP"

Row = dict[str, str]


def parse(path: Path, dialect: str) -> list[exp.Expr]:
    # sqlglot raises on a syntax error; statements it only knows as commands are checked below.
    statements = [s for s in sqlglot.parse(path.read_text(encoding="utf-8"), read=dialect) if s is not None]
    assert statements
    return statements


def nodes(statements: list[exp.Expr], kind: type[exp.Expr]) -> list[exp.Expr]:
    return [n for s in statements for n in s.walk() if isinstance(n, kind)]


def table_name(node: exp.Expr) -> str:
    table = node.find(exp.Table)
    assert table is not None
    return table.name.upper()


def literal(node: exp.Expr) -> str:
    """The value of a string literal, or the name of a T-SQL variable such as ``@oper``."""
    if isinstance(node, exp.Literal) and node.is_string:
        return str(node.this)
    if isinstance(node, exp.Parameter):
        return "@" + node.name
    return node.sql()


def inserted_rows(statements: list[exp.Expr]) -> dict[str, list[Row]]:
    """Table → the rows the INSERT statements add, as column → value."""
    rows: dict[str, list[Row]] = {}
    for insert in nodes(statements, exp.Insert):
        schema = insert.this
        assert isinstance(schema, exp.Schema), "every INSERT names its columns"
        columns = [c.name.upper() for c in schema.expressions]
        values = insert.expression
        assert isinstance(values, exp.Values)
        for row in values.expressions:
            cells = [literal(v) for v in row.expressions]
            assert len(cells) == len(columns)
            rows.setdefault(table_name(insert), []).append(dict(zip(columns, cells, strict=True)))
    return rows


def codes(rows: dict[str, list[Row]]) -> set[str]:
    return {r["CODE"] for r in rows["APP_CODE"]}


def subcodes(rows: dict[str, list[Row]]) -> set[tuple[str, str]]:
    return {(r["CODE"], r["SUBCODE"]) for r in rows["APP_SUBCODE"]}


def where_values(delete: exp.Expr, column: str) -> set[str]:
    """The values the DELETE's WHERE clause accepts for ``column`` (``=`` or ``IN``)."""
    found: set[str] = set()
    where = delete.args.get("where")
    assert where is not None, "a DELETE without WHERE would empty the table"
    for node in where.walk():
        if (
            isinstance(node, exp.EQ)
            and isinstance(node.this, exp.Column)
            and node.this.name.upper() == column
        ):
            found.add(literal(node.expression))
        if (
            isinstance(node, exp.In)
            and isinstance(node.this, exp.Column)
            and node.this.name.upper() == column
        ):
            found.update(literal(v) for v in node.expressions)
    return found


@pytest.fixture(scope="module")
def tsql() -> list[exp.Expr]:
    return parse(SCRIPT, "tsql")


@pytest.fixture(scope="module")
def tsql_rollback() -> list[exp.Expr]:
    return parse(ROLLBACK, "tsql")


@pytest.fixture(scope="module")
def sqlite_form() -> list[exp.Expr]:
    return parse(SQLITE_SCRIPT, "sqlite")


def expected_subcodes() -> set[tuple[str, str]]:
    return {(code, sub) for code, subs in DEFAULT_SUBCODES.items() for sub in subs}


class TestTsqlScript:
    def test_parses_and_hides_no_statement_in_an_unparsed_command(self, tsql: list[exp.Expr]) -> None:
        # TRY/CATCH and PRINT are only known to sqlglot as commands; the data changes must be real
        # statements, or the checks below could miss one.
        for command in nodes(tsql, exp.Command):
            text = command.sql(dialect="tsql").upper()
            assert not any(word in text for word in ("INSERT", "DELETE", "UPDATE", "MERGE")), text

    def test_codes_match_the_default_mapping(self, tsql: list[exp.Expr]) -> None:
        rows = inserted_rows(tsql)
        assert codes(rows) == set(DEFAULT_ACTIVITY_CODES.values())
        assert subcodes(rows) == expected_subcodes()

    def test_each_row_is_inserted_once(self, tsql: list[exp.Expr]) -> None:
        rows = inserted_rows(tsql)
        assert len(rows["APP_CODE"]) == len(codes(rows))
        assert len(rows["APP_SUBCODE"]) == len(subcodes(rows))

    def test_codes_are_cus_activity_codes_not_contact_tracking(self, tsql: list[exp.Expr]) -> None:
        rows = inserted_rows(tsql)
        for row in itertools.chain(rows["APP_CODE"], rows["APP_SUBCODE"]):
            assert (row["SUBSYSTEM"], row["TYPE"], row["ACTIVE_FLAG"]) == ("CUS", "ACTIVITY", "Y")
            assert row.get("OPTION_1") != "Y"
            assert row["DESCR"]
        assert all(row["OPTION_1"] == "N" for row in rows["APP_CODE"])

    def test_rows_carry_the_audit_columns(self, tsql: list[exp.Expr]) -> None:
        rows = inserted_rows(tsql)
        for row in itertools.chain(rows["APP_CODE"], rows["APP_SUBCODE"]):
            assert (row["ADDOPER"], row["MODOPER"]) == ("@oper", "@oper")
            assert (row["ADDDATE"], row["MODDATE"]) == ("@now", "@now")
        declared = {
            d.sql(dialect="tsql") for d in nodes(tsql, exp.Declare) if "@oper" in d.sql(dialect="tsql")
        }
        assert any(f"'{SETUP_OPER}'" in text for text in declared)

    def test_every_insert_is_guarded_by_if_not_exists(self, tsql: list[exp.Expr]) -> None:
        guarded = 0
        for block in nodes(tsql, exp.IfBlock):
            condition = block.this
            if not (isinstance(condition, exp.Not) and isinstance(condition.this, exp.Exists)):
                continue
            true = block.args["true"]
            first = true.expressions[0] if isinstance(true, exp.Block) else true
            assert isinstance(first, exp.Insert)
            # The guard looks in the table the insert writes to, for the same code (and subcode).
            assert table_name(condition) == table_name(first)
            (row,) = inserted_rows([first])[table_name(first)]
            guard = condition.sql(dialect="tsql")
            assert f"CODE = '{row['CODE']}'" in guard
            if "SUBCODE" in row:
                assert f"SUBCODE = '{row['SUBCODE']}'" in guard
            guarded += 1
        assert guarded == len(nodes(tsql, exp.Insert))

    def test_runs_in_a_transaction_that_is_rolled_back_on_error(self) -> None:
        text = " ".join(SCRIPT.read_text(encoding="utf-8").upper().split())
        for phrase in (
            "SET XACT_ABORT ON",
            "BEGIN TRY",
            "BEGIN TRANSACTION",
            "COMMIT TRANSACTION",
            "BEGIN CATCH",
            "ROLLBACK TRANSACTION",
            "THROW",
            "END CATCH",
        ):
            assert phrase in text


class TestRollback:
    def test_removes_exactly_what_the_script_adds(
        self, tsql: list[exp.Expr], tsql_rollback: list[exp.Expr]
    ) -> None:
        added = inserted_rows(tsql)
        removed_codes: set[str] = set()
        removed_subcodes: set[tuple[str, str]] = set()
        for delete in nodes(tsql_rollback, exp.Delete):
            assert where_values(delete, "SUBSYSTEM") == {"CUS"}
            assert where_values(delete, "TYPE") == {"ACTIVITY"}
            assert where_values(delete, "ADDOPER") == {SETUP_OPER}
            if table_name(delete) == "APP_CODE":
                removed_codes |= where_values(delete, "CODE")
            else:
                assert table_name(delete) == "APP_SUBCODE"
                removed_subcodes |= set(
                    itertools.product(where_values(delete, "CODE"), where_values(delete, "SUBCODE"))
                )
        assert removed_codes == codes(added)
        assert removed_subcodes == subcodes(added)

    def test_subcodes_go_first(self, tsql_rollback: list[exp.Expr]) -> None:
        tables = [table_name(d) for d in nodes(tsql_rollback, exp.Delete)]
        assert tables.index("APP_CODE") > max(i for i, t in enumerate(tables) if t == "APP_SUBCODE")

    def test_inserts_nothing(self, tsql_rollback: list[exp.Expr]) -> None:
        assert nodes(tsql_rollback, exp.Insert) == []
        assert nodes(tsql_rollback, exp.Update) == []

    def test_refuses_while_activities_use_the_codes(
        self, tsql: list[exp.Expr], tsql_rollback: list[exp.Expr]
    ) -> None:
        guards = [b for b in nodes(tsql_rollback, exp.IfBlock) if table_name(b.this) == "CUS_ACTIVITY"]
        assert len(guards) == 1
        checked = {literal(v) for n in guards[0].this.walk() if isinstance(n, exp.In) for v in n.expressions}
        assert checked == codes(inserted_rows(tsql))


class TestSqliteForm:
    def test_has_the_same_rows_as_the_tsql_script(
        self, tsql: list[exp.Expr], sqlite_form: list[exp.Expr]
    ) -> None:
        def essentials(rows: dict[str, list[Row]]) -> dict[str, set[tuple[str, ...]]]:
            keep = ("SUBSYSTEM", "TYPE", "CODE", "SUBCODE", "DESCR", "ACTIVE_FLAG", "OPTION_1")
            return {
                table: {tuple(r.get(k, "") for k in keep) for r in table_rows}
                for table, table_rows in rows.items()
            }

        assert essentials(inserted_rows(sqlite_form)) == essentials(inserted_rows(tsql))

    def test_marks_rows_like_the_tsql_script(self, sqlite_form: list[exp.Expr]) -> None:
        for row in itertools.chain.from_iterable(inserted_rows(sqlite_form).values()):
            assert row["ADDOPER"] == row["MODOPER"] == SETUP_OPER

    def test_runs_twice_on_the_simulator_schema_without_duplicates(self) -> None:
        conn = sqlite3.connect(":memory:")
        conn.executescript(SCHEMA)
        for _ in range(2):
            conn.executescript(SQLITE_SCRIPT.read_text(encoding="utf-8"))
        found = {r[0] for r in conn.execute("SELECT CODE FROM APP_CODE WHERE OPTION_1 <> 'Y'")}
        assert found == set(DEFAULT_ACTIVITY_CODES.values())
        assert conn.execute("SELECT count(*) FROM APP_CODE").fetchone() == (len(DEFAULT_ACTIVITY_CODES),)
        assert set(conn.execute("SELECT CODE, SUBCODE FROM APP_SUBCODE").fetchall()) == expected_subcodes()

    def test_leaves_existing_rows_alone(self) -> None:
        conn = sqlite3.connect(":memory:")
        conn.executescript(SCHEMA)
        conn.execute(
            "INSERT INTO APP_CODE (SUBSYSTEM, TYPE, CODE, DESCR, ACTIVE_FLAG) "
            "VALUES ('CUS', 'ACTIVITY', 'INFORMZ_UNSUB', 'Site text', 'N')"
        )
        conn.executescript(SQLITE_SCRIPT.read_text(encoding="utf-8"))
        assert conn.execute(
            "SELECT DESCR, ACTIVE_FLAG FROM APP_CODE WHERE CODE = 'INFORMZ_UNSUB'"
        ).fetchone() == (
            "Site text",
            "N",
        )
