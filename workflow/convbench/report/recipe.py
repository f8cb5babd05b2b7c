"""The line that says which published recipe a study reproduces (`reproduces:` in its config), with
its stated deviations one click away."""

from html import escape


def deviation_items(reproduces):
    """One list item per stated deviation: the setting, the recipe's value, convbench's, and why."""
    return "".join(
        f"<li><b>{escape(row['setting'])}</b>: {escape(row['recipe'])} → {escape(row['here'])}. "
        f"<i>Why:</i> {escape(row['reason'])}</li>"
        for row in reproduces.get("deviations") or []
    )


def recipe_note(reproduces):
    """HTML: one line naming the recipe the study reproduces, linking to its deviations (listed
    beneath it, folded) and to where they are documented; "" when the study claims no recipe."""
    if not reproduces:
        return ""
    count = len(reproduces.get("deviations") or [])
    source = (f' (<a href="{escape(reproduces["link"], quote=True)}">every deviation documented</a>)'
              if reproduces.get("link") else "")
    line = (f"<p><b>Reproduces</b> {escape(reproduces['recipe'])}: matched setting by setting, except "
            f'<a href="#recipe-deviations">{count} stated deviation{"" if count == 1 else "s"}</a>{source}.</p>')
    if not count:
        return line
    # a list, not a table: the leaderboard stays the page's first table
    return (f'{line}<details id="recipe-deviations"><summary>Deviations from the recipe, with their reasons</summary>'
            f"<ul>{deviation_items(reproduces)}</ul></details>")
