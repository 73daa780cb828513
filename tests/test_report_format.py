"""The one set of number formatters every report and console table uses."""

import pytest

from medgan import fileio, report_format as fmt, workdir


def test_numbers_intervals_and_missing_values():
    assert fmt.number(0.81234) == "0.812" and fmt.number(2.5, 0) == "2" and fmt.number(None) == "n/a"
    assert fmt.interval(0.1, 0.25) == "[0.100, 0.250]" and fmt.interval(0.1, None) == "n/a"
    assert (fmt.axis(0), fmt.axis(6)) == ("all", "6")  # k or n of the unbalanced fold


def test_p_values_read_as_people_quote_them():
    assert [fmt.p_value(p) for p in (0.5, 0.03381, 1e-4, 9.9e-5, 3e-7, None)] == [
        "0.5000", "0.0338", "0.0001", "< 0.0001", "< 0.0001", "n/a"]
    assert (fmt.p_clause(0.03381), fmt.p_clause(3e-7)) == ("p = 0.0338", "p < 0.0001")


def test_markdown_table_aligns_and_checks_widths():
    lines = fmt.markdown_table(("class", "AUC"), [("edema", "0.900")], align="lr")
    assert lines == ["| class | AUC |", "|---|---:|", "| edema | 0.900 |"]
    with pytest.raises(ValueError, match="a row has 1 cells, the header 2"):
        fmt.markdown_table(("class", "AUC"), [("edema",)])
    with pytest.raises(ValueError, match="align 'l' has 1 columns"):
        fmt.markdown_table(("class", "AUC"), [], align="l")


def test_a_finished_result_is_returned_and_announced(tmp_path, capsys):
    assert workdir.finished_result(str(tmp_path), lambda r: "unused") is None
    fileio.write_json(tmp_path / workdir.RESULT_FILE, {"steps": 7})
    assert workdir.finished_result(str(tmp_path), lambda r: f"{r['steps']} steps") == {"steps": 7}
    assert capsys.readouterr().out.strip().endswith("results.json exists: 7 steps")
