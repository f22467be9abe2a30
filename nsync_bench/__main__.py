from nsync_bench.cli import main

main()
