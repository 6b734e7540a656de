import ShopTasks

// Parses `worker`, `api`, `scheduler`, `dev`, `status`, … and runs it with Shop's tasks.
await Shop.main()
