from hello import app
