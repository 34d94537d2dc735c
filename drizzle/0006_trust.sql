-- placeholder: the owning module replaces this line with its tables (statements separated by --> statement-breakpoint)
SELECT 1;
