print("no dependencies listed anywhere")
