import pytest

from dap.report import paper


@pytest.mark.parametrize("table, design, dataset, metric, expected", [
    ("table1", "dilated_exp_dense", "piano", "PSNR", (12.50, 1.11)),
    ("table1", "conv", "speech", "PESQ", (1.73, 0.17)),
    ("table2", "dilated_exp", "digits", "PSNR", (6.95, 1.92)),
    ("table3", "dilated", "digits", "Spec. SNR", (7.78, 1.88)),
    ("table4", "conv", "drums", "SIR", (-6.41, 8.18)),
    ("table4", "dilated_exp_dense", "piano", "Env. Dist.", (0.21, 0.08)),
])
def test_spot_checks_against_the_paper_text(table, design, dataset, metric, expected):
    assert paper.cell(table, design, dataset, metric) == expected


def test_table_shapes():
    assert len(paper.table("table1")) == 4 * 5
    assert len(paper.table("table2")) == 3 * 5  # no constant-dilation row in Table 2
    assert len(paper.table("table3")) == 4 * 4
    assert len(paper.table("table4")) == 4 * 8
    with pytest.raises(KeyError):
        paper.cell("table2", "dilated", "speech", "PESQ")
