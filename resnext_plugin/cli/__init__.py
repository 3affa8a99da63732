"""The command lines behind ``tools/*.py``: each module's ``main(argv)`` is one tool.

The tools themselves are thin wrappers (``sys.exit(main())``), so the demo pipeline and the tests
call the same functions in-process. Nothing in the package imports this one.
"""
