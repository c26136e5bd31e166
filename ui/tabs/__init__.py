"""One module per tab, each with TITLE, ID and build(ctx); `app.TABS` lists them in page order.

`ui.tabs.<name>` imports the tab module `ui/tabs/<name>.py` on first use, so a new tab needs no
import line: write the module and add `tabs.<name>` to `app.TABS`.
"""
import importlib


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    return importlib.import_module(f"{__name__}.{name}")
