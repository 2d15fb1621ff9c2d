"""The README's Python snippets run, in order, as a new user would paste them."""
import os
import re
from pathlib import Path

import matplotlib

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_has_the_two_fresh_machine_commands_first():
    bash_blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    assert "pip install -e ." in bash_blocks[0] and "cnnkit demo" in bash_blocks[0]
    assert 'pip install -e ".[test]"' in bash_blocks[1] and "pytest" in bash_blocks[1]


def test_every_python_snippet_runs(tmp_path, monkeypatch):
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    blocks = python_blocks()
    assert len(blocks) >= 5
    for index, block in enumerate(blocks):
        try:
            exec(compile(block, f"README.md python block {index}", "exec"), namespace)
        except Exception as error:
            raise AssertionError(f"README python block {index} fails: {error!r}\n{block}") from error
    assert os.path.exists("digits.safetensors") and os.path.exists("filters.png")


def test_the_first_example_validates_sensibly_from_the_first_epoch():
    """Batch norm's moving statistics are right after one epoch: validation is close to training accuracy."""
    first = python_blocks()[0]
    assert "epochs=15" in first and "validation_split=0.1" in first
    namespace: dict = {}
    exec(compile(first.replace("epochs=15", "epochs=1"), "README.md python block 0", "exec"), namespace)
    history = namespace["history"].history
    assert history["val_accuracy"][0] >= history["accuracy"][0] - 0.05, history
