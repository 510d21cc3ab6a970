from agl_llm_proxy.cli import main

if __name__ == "__main__":
    main()
