SELECT correlate_demo.customers.id AS customers_id, correlate_demo.customers.name AS customers_name, correlate_demo.customers.email AS customers_email, correlate_demo.customers.region AS customers_region 
FROM correlate_demo.customers 
WHERE correlate_demo.customers.id = %(pk_1)s::INTEGER
