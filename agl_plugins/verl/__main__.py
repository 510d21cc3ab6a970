from agl_plugins.verl.entrypoint import main

if __name__ == "__main__":
    main()
