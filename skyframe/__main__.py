from skyframe.cli import app

app()
