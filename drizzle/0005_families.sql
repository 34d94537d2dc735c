-- placeholder: the owning module replaces this with its tables
SELECT 1;
