DROP TABLE opportunity_contact_roles;
DROP TABLE opportunity_line_items;
DROP TABLE price_book_entries;
DROP TABLE price_books;
DROP TABLE products;
