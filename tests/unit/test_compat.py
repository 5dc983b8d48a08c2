from shipyard.buildpack.compat import PlatformEnv, platform_env


def test_a_render_blueprint_gets_renders_own_variables() -> None:
    found = platform_env({"render.yaml": "services: []\n", "requirements.txt": "flask\n"})
    assert found == PlatformEnv("Render (render.yaml)", {"RENDER": "true", "IS_PULL_REQUEST": "false"})


def test_other_repos_get_no_platforms_identity() -> None:
    assert platform_env({"Procfile": "web: gunicorn app:app\n", "app.json": "{}"}) == PlatformEnv("")
